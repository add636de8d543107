#include "zebra/io/checkpoint_dir.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/io_test_util.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 16;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.max_seq_len = 64;
  c.group_size = 2;  // mixed pattern GLGL
  c.window = 8;
  c.tie_embeddings = tied;
  c.layer_types.clear();
  c.resolve();
  return c;
}

ParameterSet<float> random_params(const ModelConfig& c, std::uint64_t seed) {
  ParameterSet<float> p(c);
  init_parameters(p, seed, 0.5);
  // Norm gains are 1 after init; make them distinct so that swaps would show.
  for (const TensorInfo& t : p.layout.tensors) {
    if (!t.is_norm) continue;
    for (std::size_t i = 0; i < t.numel; ++i) p.tensor(t)[i] = 1.0f + 0.01f * static_cast<float>(i + t.offset % 7);
  }
  return p;
}

bool bitwise_equal(const ParameterSet<float>& a, const ParameterSet<float>& b) {
  return a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

// Every tensor of `params` except `skip`, plus `extra`, as safetensors input.
std::vector<TensorToWrite> tensors_of(const ParameterSet<float>& params, const std::string& skip = "") {
  std::vector<TensorToWrite> out;
  for (const TensorInfo& t : params.layout.tensors) {
    if (t.name != skip) out.push_back({t.name, t.shape, params.tensor(t), nullptr, {}});
  }
  return out;
}

TEST(ModelDir, RoundTripF32IsBitwiseForMixedPattern) {
  TempDir tmp;
  for (bool tied : {true, false}) {
    ModelConfig c = small_config(tied);
    ASSERT_EQ(c.pattern_string(), "GLGL");
    auto params = random_params(c, 11);
    const std::string dir = tmp.file(tied ? "tied" : "untied");
    save_model_dir(dir, params);
    EXPECT_TRUE(fs::exists(dir + "/config.json"));
    auto st = SafetensorsFile::open(dir + "/model.safetensors");
    EXPECT_EQ(st.contains("lm_head.weight"), !tied);
    EXPECT_EQ(st.metadata().at("format"), "pt");
    EXPECT_EQ(st.entry("model.layers.1.self_attn.k_proj.weight").shape, (std::vector<std::int64_t>{8, 16}));

    auto loaded = load_model_dir(dir);
    EXPECT_EQ(config_to_json(loaded.config).dump(), config_to_json(c).dump());
    EXPECT_EQ(loaded.config.pattern_string(), "GLGL");
    EXPECT_TRUE(bitwise_equal(loaded, params));
    EXPECT_EQ(loaded.views.lm_head == loaded.views.embed, tied);
  }
  // Nothing but the two model directories is left beside them (no temporaries).
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries += e.exists();
  EXPECT_EQ(entries, 2u);
}

TEST(ModelDir, RoundTripBf16AndF16WithinRounding) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto params = random_params(c, 12);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    SaveModelOptions o;
    o.dtype = dt;
    save_model_dir(tmp.file("m"), params, o);
    EXPECT_EQ(SafetensorsFile::open(tmp.file("m/model.safetensors")).entry("model.norm.weight").dtype, dt);
    auto loaded = load_model_dir(tmp.file("m"));
    const double rel = dt == DType::kBF16 ? 0x1p-8 : 0x1p-11;
    for (std::size_t i = 0; i < params.data.size(); ++i) {
      const double x = params.data[i];
      // F16 subnormals (|x| < 2^-14) have an absolute error of at most 2^-25.
      ASSERT_LE(std::fabs(loaded.data[i] - x), std::max(rel * std::fabs(x), 0x1p-25)) << i;
    }
  }
}

// config.json says what transformers should build (model/config.hpp) and the dtype it loads in.
TEST(ModelDir, ConfigNamesTheTransformersFamilyAndDtype) {
  TempDir tmp;
  auto read_json = [&](const std::string& f) { return nlohmann::json::parse(read_file(tmp.file(f))); };
  auto params = random_params(small_config(true), 3);
  SaveModelOptions o;
  o.dtype = DType::kBF16;
  save_model_dir(tmp.file("zebra"), params, o);
  nlohmann::json j = read_json("zebra/config.json");
  EXPECT_EQ(j["architectures"][0], "MinistralForCausalLM");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(load_model_dir_config(tmp.file("zebra")).pattern_string(), "GLGL");

  ParameterSet<float> global(params.config.full_attention_twin());
  global.data = params.data;
  save_model_dir(tmp.file("llama"), global);
  j = read_json("llama/config.json");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["torch_dtype"], "float32");

  ModelConfig alibi = small_config(true);
  alibi.pos_embedding = PosEmbedding::kAlibi;
  ParameterSet<float> a(alibi);
  init_parameters(a, 4, 0.5);
  save_model_dir(tmp.file("alibi"), a);
  EXPECT_EQ(read_json("alibi/config.json")["model_type"], "zebra");
  EXPECT_TRUE(bitwise_equal(load_model_dir(tmp.file("alibi")), a));
}

TEST(ModelDir, SavesOverAnExistingDirectoryAndCopiesTokenizer) {
  TempDir tmp;
  const std::string tok = tmp.file("tokenizer.model");
  write_file_atomic(tok, std::string("not really a sentencepiece model"));
  ModelConfig c = small_config(true);
  auto a = random_params(c, 1), b = random_params(c, 2);
  SaveModelOptions o;
  o.tokenizer_file = tok;
  o.extra_files = [](const std::string& dir) { write_file_atomic(dir + "/trainer_state.json", std::string("{}")); };
  save_model_dir(tmp.file("m"), a, o);
  EXPECT_EQ(find_tokenizer_file(tmp.file("m")), tmp.file("m/tokenizer.model"));
  EXPECT_TRUE(fs::exists(tmp.file("m/trainer_state.json")));
  save_model_dir(tmp.file("m"), b);  // replaces the whole directory
  EXPECT_TRUE(bitwise_equal(load_model_dir(tmp.file("m")), b));
  EXPECT_EQ(find_tokenizer_file(tmp.file("m")), "");
  EXPECT_FALSE(fs::exists(tmp.file("m/trainer_state.json")));
  save_model_dir(tmp.file("m") + "/", a);  // a trailing slash names the same directory
  EXPECT_TRUE(bitwise_equal(load_model_dir(tmp.file("m")), a));
  o.tokenizer_file = tmp.file("missing.model");
  expect_error([&] { save_model_dir(tmp.file("m2"), a, o); }, {"missing.model", "not found"});
  EXPECT_FALSE(fs::exists(tmp.file("m2")));
}

TEST(ModelDir, ModelAdjustmentRelaysTheModel) {
  TempDir tmp;
  ModelConfig c = small_config(true).full_attention_twin();
  auto params = random_params(c, 3);
  save_model_dir(tmp.file("m"), params);
  LoadModelOptions o;
  o.pattern = ModelAdjustment::pattern(4, 16);
  auto loaded = load_model_dir(tmp.file("m"), o);
  EXPECT_EQ(loaded.config.pattern_string(), "GLLL");
  EXPECT_EQ(loaded.config.window, 16);
  EXPECT_EQ(load_model_dir_config(tmp.file("m"), o).pattern_string(), "GLLL");
  EXPECT_TRUE(bitwise_equal(loaded, params));
  o.pattern = ModelAdjustment::pattern(0, 16);  // a window alone cannot re-lay an all-global model
  expect_error([&] { (void)load_model_dir(tmp.file("m"), o); }, {"window of 16", "group size"});
}

// Two shards and an index, written by hand as transformers would.
TEST(ModelDir, LoadsShardedCheckpoint) {
  TempDir tmp;
  ModelConfig c = small_config(false);
  auto params = random_params(c, 4);
  const std::string dir = tmp.file("sharded");
  fs::create_directories(dir);
  save_config(c, dir + "/config.json");
  std::vector<TensorToWrite> first, second;
  nlohmann::json map = nlohmann::json::object();
  for (const TensorInfo& t : params.layout.tensors) {
    bool in_first = t.name.find("layers.2") == std::string::npos && t.name.find("layers.3") == std::string::npos &&
                    t.name != "lm_head.weight" && t.name != "model.norm.weight";
    const char* shard = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    (in_first ? first : second).push_back({t.name, t.shape, params.tensor(t), nullptr, {}});
    map[t.name] = shard;
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first, {{"format", "pt"}}, DType::kF32);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", second, {{"format", "pt"}}, DType::kF32);
  nlohmann::json index = {{"metadata", {{"total_size", params.layout.total * 4}}}, {"weight_map", map}};
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2));
  auto loaded = load_model_dir(dir);
  EXPECT_TRUE(bitwise_equal(loaded, params));

  // The index names a tensor in the wrong shard.
  nlohmann::json wrong = index;
  wrong["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  write_file_atomic(dir + "/model.safetensors.index.json", wrong.dump());
  expect_error([&] { (void)load_model_dir(dir); }, {"'model.norm.weight'", "model-00001-of-00002", "does not hold it"});
  // A shard name escaping the directory.
  wrong = index;
  wrong["weight_map"]["model.norm.weight"] = "../model-00002-of-00002.safetensors";
  write_file_atomic(dir + "/model.safetensors.index.json", wrong.dump());
  expect_error([&] { (void)load_model_dir(dir); }, {"not a plain file name"});
  // A missing shard.
  wrong = index;
  wrong["weight_map"]["model.norm.weight"] = "model-00003-of-00002.safetensors";
  write_file_atomic(dir + "/model.safetensors.index.json", wrong.dump());
  expect_error([&] { (void)load_model_dir(dir); }, {"model-00003-of-00002.safetensors", "missing"});
  // A shard name longer than a file name can be (found by the shard_index fuzzer: std::filesystem threw its own
  // exception, which escaped as std::terminate).
  wrong = index;
  wrong["weight_map"]["model.norm.weight"] = std::string(300, 'm') + ".safetensors";
  write_file_atomic(dir + "/model.safetensors.index.json", wrong.dump());
  expect_error([&] { (void)load_model_dir(dir); }, {"model.safetensors.index.json", "longer than 255 bytes", "... ("});
  // Bad index JSON.
  write_file_atomic(dir + "/model.safetensors.index.json", std::string("{\"weight_map\": 3}"));
  expect_error([&] { (void)load_model_dir(dir); }, {"weight_map"});
  // A tensor present in both shards.
  first.push_back(second.back());
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first, {}, DType::kF32);
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2));
  expect_error([&] { (void)load_model_dir(dir); }, {"two shards"});
}

TEST(ModelDir, MissingTensorIsNamedWithItsShape) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto params = random_params(c, 5);
  save_model_dir(tmp.file("m"), params);
  write_safetensors(tmp.file("m/model.safetensors"), tensors_of(params, "model.layers.2.mlp.up_proj.weight"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); },
               {tmp.file("m"), "missing", "'model.layers.2.mlp.up_proj.weight [24, 16]'"});
}

TEST(ModelDir, WrongShapeIsNamedWithBothShapes) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto params = random_params(c, 6);
  save_model_dir(tmp.file("m"), params);
  auto tensors = tensors_of(params);
  for (auto& t : tensors) {
    if (t.name == "model.layers.1.self_attn.q_proj.weight") t.shape = {8, 32};  // same numel, wrong shape
  }
  write_safetensors(tmp.file("m/model.safetensors"), tensors);
  expect_error(
      [&] { (void)load_model_dir(tmp.file("m")); },
      {"model.safetensors", "'model.layers.1.self_attn.q_proj.weight'", "expected shape [16, 16], found [8, 32]"});
}

// A config.json whose vocab_size (inside the allowed range) does not match the embedding is refused by the
// shapes before anything is allocated: it used to allocate the 2^24-row model and die of std::bad_alloc.
TEST(ModelDir, HugeVocabSizeIsRefusedByTheShapesBeforeAllocation) {
  TempDir tmp;
  auto params = random_params(small_config(true), 6);
  save_model_dir(tmp.file("m"), params);
  const std::string cpath = tmp.file("m/config.json");
  nlohmann::json j = nlohmann::json::parse(read_file(cpath));
  j["vocab_size"] = std::int64_t{1} << 24;
  j["hidden_size"] = 4096;
  j["head_dim"] = 1024;
  write_file_atomic(cpath, j.dump());
  for (const bool as_store : {false, true}) {
    expect_error(
        [&] {
          if (as_store) {
            (void)load_model_dir_weights(tmp.file("m"), {}, std::nullopt);
          } else {
            (void)load_model_dir(tmp.file("m"));
          }
        },
        {"model.safetensors", "'model.embed_tokens.weight'", "expected shape [16777216, 4096], found [37, 16]",
         "vocab_size 16777216"});
  }
}

TEST(ModelDir, UnexpectedTensorsAreErrorsExceptHarmlessOnes) {
  TempDir tmp;
  ModelConfig c = small_config(true);
  auto params = random_params(c, 7);
  save_model_dir(tmp.file("m"), params);
  std::vector<float> inv_freq(2, 1.0f), extra(16, 0.0f);
  auto tensors = tensors_of(params);
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {2}, inv_freq.data(), nullptr, {}});
  write_safetensors(tmp.file("m/model.safetensors"), tensors);
  EXPECT_TRUE(bitwise_equal(load_model_dir(tmp.file("m")), params));
  tensors.push_back({"model.layers.0.self_attn.q_norm.weight", {16}, extra.data(), nullptr, {}});
  write_safetensors(tmp.file("m/model.safetensors"), tensors);
  expect_error([&] { (void)load_model_dir(tmp.file("m")); },
               {"does not use", "'model.layers.0.self_attn.q_norm.weight'"});
  // Layers beyond num_hidden_layers are unexpected too.
  ModelConfig deeper = c;
  deeper.n_layers = 5;
  deeper.layer_types.clear();
  deeper.resolve();
  auto bigger = random_params(deeper, 8);
  write_safetensors(tmp.file("m/model.safetensors"), tensors_of(bigger));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"'model.layers.4."});
}

TEST(ModelDir, TiedAndUntiedHeads) {
  TempDir tmp;
  // Config untied, file without lm_head: missing.
  auto untied = random_params(small_config(false), 9);
  save_model_dir(tmp.file("m"), untied);
  write_safetensors(tmp.file("m/model.safetensors"), tensors_of(untied, "lm_head.weight"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"'lm_head.weight [37, 16]'"});

  // Config tied, file with a differing lm_head: the config wins, the embedding is the head.
  auto tied = random_params(small_config(true), 10);
  save_model_dir(tmp.file("t"), tied);
  auto tensors = tensors_of(tied);
  tensors.push_back({"lm_head.weight", {37, 16}, untied.views.lm_head, nullptr, {}});
  write_safetensors(tmp.file("t/model.safetensors"), tensors);
  auto loaded = load_model_dir(tmp.file("t"));
  EXPECT_TRUE(loaded.config.tie_embeddings);
  EXPECT_TRUE(bitwise_equal(loaded, tied));

  // config.json silent about tying (transformers' LlamaConfig default is untied): the file decides.
  auto j = nlohmann::json::parse(read_file(tmp.file("t/config.json")));
  j.erase("tie_word_embeddings");
  write_file_atomic(tmp.file("t/config.json"), j.dump());
  loaded = load_model_dir(tmp.file("t"));
  EXPECT_FALSE(loaded.config.tie_embeddings);
  EXPECT_EQ(std::memcmp(loaded.views.lm_head, untied.views.lm_head, 37 * 16 * sizeof(float)), 0);
  write_safetensors(tmp.file("t/model.safetensors"), tensors_of(tied));
  EXPECT_TRUE(load_model_dir(tmp.file("t")).config.tie_embeddings);
}

TEST(ModelDir, MissingFilesAndBadConfig) {
  TempDir tmp;
  expect_error([&] { (void)load_model_dir(tmp.file("nope")); }, {"neither model.safetensors"});
  auto params = random_params(small_config(true), 13);
  save_model_dir(tmp.file("m"), params);
  fs::remove(tmp.file("m/config.json"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"config.json not found"});
  write_file_atomic(tmp.file("m/config.json"), std::string("{not json"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"config.json", "not valid JSON"});
  write_file_atomic(tmp.file("m/config.json"), std::string(R"({"hidden_size": -4})"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"config.json", "hidden_size"});
  // A config of a different model than the weights: the shapes disagree.
  ModelConfig wider = small_config(true);
  wider.ffn_dim = 32;
  save_config(wider, tmp.file("m/config.json"));
  expect_error([&] { (void)load_model_dir(tmp.file("m")); }, {"gate_proj", "expected shape [32, 16], found [24, 16]"});
}

}  // namespace
}  // namespace zebra
