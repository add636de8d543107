// A llama GGUF as a model loader sees it: config from llama.* keys, tensors under Hugging Face names
// with Q/K rows permuted back to rotate-half (float and quantized rows alike), the vocabulary; plus
// the vocabulary-only files of ../shared and the real SmolLM2 file when they are present.
#include "zebra/io/gguf_model.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "io/io_test_util.hpp"
#include "io/tiny_gguf.hpp"
#include "test_paths.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::expect_error;
using test::TempDir;
using test::TinyLlama;

TEST(GgufModel, ConfigFromLlamaKeys) {
  TempDir dir;
  const GgufFile f = GgufFile::open(TinyLlama().write(dir));
  const ModelConfig c = gguf_model_config(f);
  EXPECT_EQ(c.vocab_size, 6);
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.ffn_dim, 64);
  EXPECT_EQ(c.max_seq_len, 128);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_NEAR(c.norm_eps, 1e-5, 1e-12);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.pattern_string(), "GG");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 0);
}

TEST(GgufModel, SlidingWindowRopeScalingAndUntied) {
  TempDir dir;
  TinyLlama m;
  m.set("llama.attention.sliding_window", GgufValue::scalar<std::uint32_t>(16));
  m.set("llama.attention.sliding_window_pattern", GgufValue::scalar<std::uint32_t>(2));  // l % 2 < 1: local
  m.set("llama.rope.scaling.type", GgufValue::string("linear"));
  m.set("llama.rope.scaling.factor", GgufValue::scalar(4.0f));
  m.add("output.weight", DType::kF16, {6, 32});
  ModelConfig c = gguf_model_config(GgufFile::open(m.write(dir, "a.gguf")));
  EXPECT_EQ(c.pattern_string(), "LG");
  EXPECT_EQ(c.window, 16);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLinear);
  EXPECT_EQ(c.rope_scaling_factor, 4.0);
  EXPECT_FALSE(c.tie_embeddings);
  const bool swa[] = {false, true};
  m.set("llama.attention.sliding_window_pattern", GgufValue::array<bool>(swa));
  EXPECT_EQ(gguf_model_config(GgufFile::open(m.write(dir, "b.gguf"))).pattern_string(), "GL");
  std::erase_if(m.metadata, [](const auto& kv) { return kv.first == "llama.attention.sliding_window_pattern"; });
  EXPECT_EQ(gguf_model_config(GgufFile::open(m.write(dir, "c.gguf"))).pattern_string(), "LL");
}

TEST(GgufModel, RefusesWhatItCannotRun) {
  TempDir dir;
  auto refuse = [&](TinyLlama m, std::initializer_list<std::string> parts) {
    const std::string path = m.write(dir);
    expect_error(
        [&] {
          const GgufFile f = GgufFile::open(path);
          gguf_model_tensors(f, gguf_model_config(f));
        },
        parts);
  };
  TinyLlama m;
  m.set("general.architecture", GgufValue::string("gpt2"));
  refuse(m, {"tiny.gguf", "architecture 'gpt2'", "supported: llama"});
  m = TinyLlama();
  m.set("llama.rope.dimension_count", GgufValue::scalar<std::uint32_t>(4));
  refuse(m, {"rope.dimension_count 4", "head dimension 8"});
  m = TinyLlama();
  m.set("llama.rope.scaling.type", GgufValue::string("yarn"));
  refuse(m, {"'yarn'", "supported: none, linear"});
  m = TinyLlama();
  m.set("llama.attention.head_count", GgufValue::scalar<std::uint32_t>(0));
  refuse(m, {"attention.head_count' = 0"});
  m = TinyLlama();
  m.set("llama.block_count", GgufValue::string("two"));
  refuse(m, {"llama.block_count", "expected an integer", "found string"});
  m = TinyLlama();
  m.set("llama.vocab_size", GgufValue::scalar<std::uint32_t>(7));
  refuse(m, {"vocab_size = 7", "6 tokens"});
  m = TinyLlama();
  m.remove("blk.1.ffn_up.weight");
  refuse(m, {"'blk.1.ffn_up.weight'", "model.layers.1.mlp.up_proj.weight", "missing"});
  m = TinyLlama();
  m.add("blk.2.attn_norm.weight", DType::kF32, {32});
  refuse(m, {"'blk.2.attn_norm.weight'", "not part of"});
  m = TinyLlama();
  m.remove("blk.0.attn_k.weight");
  m.add("blk.0.attn_k.weight", DType::kF32, {32, 32});
  refuse(m, {"'blk.0.attn_k.weight'", "expected shape [16, 32]", "found [32, 32]"});
  m = TinyLlama();
  m.add("rope_freqs.weight", DType::kF32, {4});
  refuse(m, {"rope_freqs", "not supported"});
}

// GGUF stores Q/K rows of each head interleaved: stored row 2k holds rotate-half row k and 2k + 1
// holds row hd/2 + k. The map must undo it on raw rows, for F32 and for Q8_0 blocks alike, and leave
// every other tensor borrowed from the file untouched.
TEST(GgufModel, TensorsUnderHfNamesWithQkRowsPermuted) {
  TempDir dir;
  const TinyLlama m;
  const GgufFile f = GgufFile::open(m.write(dir));
  const ModelConfig c = gguf_model_config(f);
  const std::vector<GgufModelTensor> ts = gguf_model_tensors(f, c);
  const ParamLayout layout = make_param_layout(c);
  ASSERT_EQ(ts.size(), layout.tensors.size());
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const GgufModelTensor& t = ts[i];
    EXPECT_EQ(t.name, layout.tensors[i].name);
    EXPECT_EQ(t.shape, layout.tensors[i].shape) << t.name;
    EXPECT_EQ(gguf_tensor_name(t.name), t.gguf_name);
    const std::span<const std::uint8_t> stored = f.raw(t.gguf_name);
    ASSERT_EQ(t.bytes().size(), stored.size()) << t.name;
    const bool qk = t.name.ends_with("q_proj.weight") || t.name.ends_with("k_proj.weight");
    EXPECT_EQ(t.permuted, qk) << t.name;
    if (!qk) {
      EXPECT_EQ(t.bytes().data(), stored.data()) << t.name << " should borrow the mapping";
      continue;
    }
    const std::int64_t heads = t.name.ends_with("q_proj.weight") ? c.n_heads : c.n_kv_heads;
    const std::size_t rb = dtype_row_bytes(t.dtype, t.shape[1]);
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t r = 0; r < c.head_dim; ++r) {
        const std::int64_t half = c.head_dim / 2;
        const std::int64_t src = r < half ? 2 * r : 2 * (r - half) + 1;
        EXPECT_EQ(0, std::memcmp(t.bytes().data() + static_cast<std::size_t>(h * c.head_dim + r) * rb,
                                 stored.data() + static_cast<std::size_t>(h * c.head_dim + src) * rb, rb))
            << t.name << " head " << h << " row " << r;
      }
    }
    const WeightMatrix w = t.matrix();
    EXPECT_EQ(w.rows, t.shape[0]);
    EXPECT_EQ(w.cols, t.shape[1]);
    EXPECT_EQ(w.data, t.bytes().data());
  }
  EXPECT_EQ(ts[2].dtype, DType::kQ8_0);  // model.layers.0.self_attn.q_proj.weight
  expect_error([] { gguf_tensor_name("model.layers.0.mlp.nope"); }, {"no GGUF counterpart"});
}

TEST(GgufModel, Vocab) {
  TempDir dir;
  TinyLlama m;
  const VocabData v = gguf_vocab(GgufFile::open(m.write(dir)));
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  EXPECT_EQ(v.tokens.size(), 6u);
  EXPECT_EQ(v.tokens[5], "Ġa");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b", "Ġ a"}));
  EXPECT_EQ(v.token_types, (std::vector<std::int32_t>{3, 3, 1, 1, 1, 1}));
  EXPECT_EQ(v.scores[3], -2.0f);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 0);
  EXPECT_EQ(v.pad_id, -1);  // 99 is outside the vocabulary
  EXPECT_EQ(v.unk_id, -1);
  EXPECT_EQ(v.add_bos, std::optional<bool>(false));
  EXPECT_FALSE(v.add_eos.has_value());
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);

  const std::int32_t bad_types[] = {3, 3, 1, 9, 1, 1};
  m.set("tokenizer.ggml.token_type", GgufValue::array<std::int32_t>(bad_types));
  expect_error([&] { gguf_vocab(GgufFile::open(m.write(dir, "b.gguf"))); }, {"token 3 has type 9", "0..6"});
  const float short_scores[] = {0, 1};
  m = TinyLlama();
  m.set("tokenizer.ggml.scores", GgufValue::array<float>(short_scores));
  expect_error([&] { gguf_vocab(GgufFile::open(m.write(dir, "c.gguf"))); },
               {"tokenizer.ggml.scores", "2 entries", "(6)"});
  m = TinyLlama();
  m.set("tokenizer.ggml.tokens", GgufValue::scalar<std::uint32_t>(3));
  expect_error([&] { gguf_vocab(GgufFile::open(m.write(dir, "d.gguf"))); }, {"tokenizer.ggml.tokens", "array[string]"});
}

// The vocabulary-only files of llama.cpp's tests (../shared/data/tokenizer-vectors).
TEST(GgufModel, SharedVocabFiles) {
  const std::string dir = test::shared_dir() + "/data/tokenizer-vectors";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent";
  struct Expect {
    const char* name;
    const char* model;
    const char* pre;
    std::size_t n_tokens;
  };
  for (const Expect& e : {Expect{"llama-spm", "llama", "default", 32000},
                          Expect{"llama-bpe", "gpt2", "llama-bpe", 128256}, Expect{"gpt-2", "gpt2", "gpt-2", 50257},
                          Expect{"starcoder", "gpt2", "starcoder", 49152}, Expect{"qwen2", "gpt2", "qwen2", 151936}}) {
    SCOPED_TRACE(e.name);
    const GgufFile f = GgufFile::open(dir + "/ggml-vocab-" + e.name + ".gguf");
    EXPECT_TRUE(f.tensors().empty());
    const VocabData v = gguf_vocab(f);
    EXPECT_EQ(v.model, e.model);
    EXPECT_EQ(v.pre, e.pre);
    EXPECT_EQ(v.tokens.size(), e.n_tokens);
    ASSERT_EQ(v.token_types.size(), v.tokens.size());
    std::map<std::int32_t, std::size_t> by_type;
    for (std::int32_t t : v.token_types) ++by_type[t];
    EXPECT_GT(by_type[static_cast<std::int32_t>(TokenType::kNormal)], v.tokens.size() / 2);
    EXPECT_GE(by_type[static_cast<std::int32_t>(TokenType::kControl)], 1u);
    if (v.model == "gpt2") {
      EXPECT_GT(v.merges.size(), 10000u);
      EXPECT_TRUE(v.scores.empty() || v.scores.size() == v.tokens.size());
    } else {
      EXPECT_EQ(v.scores.size(), v.tokens.size());
      EXPECT_EQ(by_type[static_cast<std::int32_t>(TokenType::kByte)], 256u);  // <0x00>..<0xFF>
      EXPECT_EQ(v.tokens[static_cast<std::size_t>(v.bos_id)], "<s>");
      EXPECT_EQ(v.tokens[static_cast<std::size_t>(v.eos_id)], "</s>");
    }
    EXPECT_GE(v.eos_id, 0);
  }
}

// SmolLM2-135M-Instruct from scripts/fetch_smollm2.sh, when it has been fetched.
std::string smollm2_path() {
  if (const char* p = std::getenv("ZEBRA_SMOLLM2_GGUF")) return p;
  const char* cache = std::getenv("ZEBRA_CACHE");
  const char* home = std::getenv("HOME");
  const std::filesystem::path dir =
      std::filesystem::path(cache ? cache : (home ? std::string(home) + "/.cache/zebra" : "/nonexistent")) / "smollm2";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".gguf") return e.path().string();
  }
  return "";
}

TEST(GgufModel, SmolLM2) {
  const std::string path = smollm2_path();
  if (path.empty()) GTEST_SKIP() << "SmolLM2 not fetched (scripts/fetch_smollm2.sh)";
  const GgufFile f = GgufFile::open(path);
  const ModelConfig c = gguf_model_config(f);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.d_model, 576);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.pattern_string(), std::string(30, 'G'));
  const std::vector<GgufModelTensor> ts = gguf_model_tensors(f, c);
  std::map<std::string, int> dtypes;
  for (const GgufModelTensor& t : ts) ++dtypes[to_string(t.dtype)];
  std::string summary;
  for (const auto& [d, n] : dtypes) summary += " " + d + "=" + std::to_string(n);
  for (const GgufModelTensor& t : ts) {
    if (dtypes[to_string(t.dtype)] <= 2) summary += " (" + t.gguf_name + ": " + to_string(t.dtype) + ")";
  }
  std::printf("SmolLM2: %zu tensors, tied %d, dtypes:%s\n", ts.size(), c.tie_embeddings ? 1 : 0, summary.c_str());
  EXPECT_GT(dtypes["Q4_1"], 0);
  const VocabData v = gguf_vocab(f);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.tokens.size(), 49152u);
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);
  // Every tensor dequantises to finite values of a plausible size (a corrupted layout would not).
  for (const GgufModelTensor& t : ts) {
    const WeightMatrix w = t.matrix();
    std::vector<float> row(static_cast<std::size_t>(w.cols));
    quant::dequantize_row(t.dtype, w.row(w.rows - 1), row.data(), w.cols);
    for (float x : row) ASSERT_TRUE(std::isfinite(x) && std::fabs(x) < 100.0f) << t.name << " " << x;
  }
}

}  // namespace
}  // namespace zebra
