// A tiny llama GGUF written by the tests (gguf_model_test, the LCAT trainer test): d 32, 2 layers, 4 heads of 8
// over 2 KV heads, ffn 64, a 6-token byte-level BPE vocabulary with a ChatML-style chat template. attn_q is Q8_0
// (whole blocks along d = 32), attn_v and ffn_gate F16, everything else F32.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/io_test_util.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/dtype.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::test {

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

struct TinyLlama {
  Metadata metadata;
  std::map<std::string, std::vector<std::uint8_t>> data;
  std::vector<std::pair<std::string, std::pair<DType, std::vector<std::int64_t>>>> specs;
  bool untied = false;
  float scale = 1.0f;

  // Weights are normal(0, scale^2).
  explicit TinyLlama(float scale = 1.0f) : scale(scale) {
    metadata = {
        {"general.architecture", GgufValue::string("llama")},
        {"llama.context_length", GgufValue::scalar<std::uint32_t>(128)},
        {"llama.embedding_length", GgufValue::scalar<std::uint32_t>(32)},
        {"llama.block_count", GgufValue::scalar<std::uint32_t>(2)},
        {"llama.feed_forward_length", GgufValue::scalar<std::uint32_t>(64)},
        {"llama.attention.head_count", GgufValue::scalar<std::uint32_t>(4)},
        {"llama.attention.head_count_kv", GgufValue::scalar<std::uint32_t>(2)},
        {"llama.rope.freq_base", GgufValue::scalar(100000.0f)},
        {"llama.rope.dimension_count", GgufValue::scalar<std::uint32_t>(8)},
        {"llama.attention.layer_norm_rms_epsilon", GgufValue::scalar(1e-5f)},
        {"tokenizer.ggml.model", GgufValue::string("gpt2")},
        {"tokenizer.ggml.pre", GgufValue::string("smollm")},
        {"tokenizer.ggml.tokens", GgufValue::string_array({"<|endoftext|>", "<|im_start|>", "a", "b", "ab", "Ġa"})},
        {"tokenizer.ggml.merges", GgufValue::string_array({"a b", "Ġ a"})},
        {"tokenizer.ggml.bos_token_id", GgufValue::scalar<std::uint32_t>(1)},
        {"tokenizer.ggml.eos_token_id", GgufValue::scalar<std::uint32_t>(0)},
        {"tokenizer.ggml.padding_token_id", GgufValue::scalar<std::uint32_t>(99)},  // outside: dropped
        {"tokenizer.ggml.add_bos_token", GgufValue::scalar(false)},
        {"tokenizer.chat_template",
         GgufValue::string("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")},
    };
    const std::int32_t types[] = {3, 3, 1, 1, 1, 1};
    const float scores[] = {0, 0, -1, -2, -3, -4};
    metadata.emplace_back("tokenizer.ggml.token_type", GgufValue::array<std::int32_t>(types));
    metadata.emplace_back("tokenizer.ggml.scores", GgufValue::array<float>(scores));
    add("token_embd.weight", DType::kF32, {6, 32});
    for (int l = 0; l < 2; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      add(p + "attn_norm.weight", DType::kF32, {32});
      add(p + "attn_q.weight", DType::kQ8_0, {32, 32});
      add(p + "attn_k.weight", DType::kF32, {16, 32});
      add(p + "attn_v.weight", DType::kF16, {16, 32});
      add(p + "attn_output.weight", DType::kF32, {32, 32});
      add(p + "ffn_norm.weight", DType::kF32, {32});
      add(p + "ffn_gate.weight", DType::kF16, {64, 32});
      add(p + "ffn_up.weight", DType::kF32, {64, 32});
      add(p + "ffn_down.weight", DType::kF32, {32, 64});
    }
    add("output_norm.weight", DType::kF32, {32});
  }

  // Random values stored in `dtype` (quantized through the reference quantizer).
  void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    Rng rng(std::hash<std::string>{}(name));
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = scale * static_cast<float>(rng.normal());
    std::vector<std::uint8_t> bytes(dtype_row_bytes(dtype, shape.back()) * static_cast<std::size_t>(n / shape.back()));
    for (std::int64_t r = 0; r < n / shape.back(); ++r) {
      quant::quantize_row(dtype, v.data() + r * shape.back(), bytes.data() + dtype_row_bytes(dtype, shape.back()) * r,
                          shape.back());
    }
    data[name] = std::move(bytes);
    specs.push_back({name, {dtype, std::move(shape)}});
  }
  void remove(const std::string& name) {
    data.erase(name);
    std::erase_if(specs, [&](const auto& s) { return s.first == name; });
  }
  void set(const std::string& key, GgufValue v) {
    for (auto& [k, old] : metadata) {
      if (k == key) {
        old = std::move(v);
        return;
      }
    }
    metadata.emplace_back(key, std::move(v));
  }
  std::string write(const TempDir& dir, const std::string& name = "tiny.gguf") const {
    std::vector<GgufTensorToWrite> t;
    for (const auto& [n, s] : specs) t.push_back({n, s.first, s.second, data.at(n)});
    write_gguf(dir.file(name), metadata, t);
    return dir.file(name);
  }
};

}  // namespace zebra::test
