#include "zebra/io/gguf_export.hpp"

#include <cstring>

#include "zebra/io/gguf_model.hpp"
#include "zebra/io/rope_layout.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

void put_u32(Metadata& m, const std::string& key, std::int64_t v) {
  m.emplace_back(key, GgufValue::scalar(static_cast<std::uint32_t>(v)));
}
void put_f32(Metadata& m, const std::string& key, double v) {
  m.emplace_back(key, GgufValue::scalar(static_cast<float>(v)));
}

const char* rope_type_name(RopeScaling s) { return s == RopeScaling::kNone ? "none" : to_string(s); }

Metadata model_metadata(const ModelConfig& c, const GgufExportOptions& o) {
  Metadata m;
  const std::string p = "zebra.";
  m.emplace_back("general.architecture", GgufValue::string("zebra"));
  m.emplace_back("general.name", GgufValue::string(o.name.empty() ? std::string("zebra") : o.name));
  // llama.cpp's file types of the whole-model types (MOSTLY_Q8_0 = 7, MOSTLY_Q4_0 = 2, MOSTLY_Q4_1 = 3,
  // MOSTLY_F16 = 1, ALL_F32 = 0, MOSTLY_BF16 = 32).
  const std::int64_t file_type = o.matrix_dtype == DType::kQ8_0   ? 7
                                 : o.matrix_dtype == DType::kQ4_0 ? 2
                                 : o.matrix_dtype == DType::kQ4_1 ? 3
                                 : o.matrix_dtype == DType::kF16  ? 1
                                 : o.matrix_dtype == DType::kBF16 ? 32
                                                                  : 0;
  put_u32(m, "general.file_type", file_type);
  put_u32(m, p + "context_length", c.max_seq_len);
  put_u32(m, p + "embedding_length", c.d_model);
  put_u32(m, p + "block_count", c.n_layers);
  put_u32(m, p + "feed_forward_length", c.ffn_dim);
  put_u32(m, p + "attention.head_count", c.n_heads);
  put_u32(m, p + "attention.head_count_kv", c.n_kv_heads);
  put_u32(m, p + "attention.key_length", c.head_dim);
  put_u32(m, p + "attention.value_length", c.head_dim);
  put_f32(m, p + "attention.layer_norm_rms_epsilon", c.norm_eps);
  put_f32(m, p + "rope.freq_base", c.rope_theta);
  put_u32(m, p + "rope.dimension_count", c.head_dim);
  put_u32(m, p + "vocab_size", c.vocab_size);
  m.emplace_back(p + "rope.scaling.type", GgufValue::string(rope_type_name(c.rope_scaling)));
  put_f32(m, p + "rope.scaling.factor", c.rope_scaling_factor);
  if (c.rope_original_max_positions > 0) {
    put_u32(m, p + "rope.scaling.original_context_length", c.rope_original_max_positions);
  }
  bool any_local = false;
  std::vector<std::uint8_t> local(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    local[static_cast<std::size_t>(l)] = c.layer_types[static_cast<std::size_t>(l)] == LayerType::kLocal;
    any_local = any_local || local[static_cast<std::size_t>(l)] != 0;
  }
  if (any_local) {
    put_u32(m, p + "attention.sliding_window", c.window);
    GgufValue pattern;
    pattern.type = GgufType::kArray;
    pattern.elem_type = GgufType::kBool;
    pattern.count = local.size();
    pattern.raw = local;
    m.emplace_back(p + "attention.sliding_window_pattern", pattern);
  }
  return m;
}

}  // namespace

GgufExportSummary write_model_gguf(const std::string& path, const ParameterSet<float>& params,
                                   const std::vector<std::pair<std::string, GgufValue>>& tokenizer_metadata,
                                   const GgufExportOptions& o) {
  const ModelConfig& c = params.config;
  ZEBRA_CHECK(c.pos_embedding == PosEmbedding::kRope, "GGUF export: the model uses ", to_string(c.pos_embedding),
              " positions; a GGUF describes RoPE models only");
  for (DType d : {o.matrix_dtype, o.embed_dtype}) {
    ZEBRA_CHECK(d == DType::kQ8_0 || d == DType::kQ4_0 || d == DType::kQ4_1 || d == DType::kF16 || d == DType::kBF16 ||
                    d == DType::kF32,
                "GGUF export: cannot write tensors as ", to_string(d), " (Q8_0, Q4_0, Q4_1, F16, BF16, F32)");
  }
  Metadata meta = model_metadata(c, o);
  for (const auto& [key, value] : tokenizer_metadata) {
    if (key.starts_with("tokenizer.")) meta.emplace_back(key, value);
  }
  // Convert every tensor first (a misfit is refused before the file is touched); the writer then lays them out.
  std::vector<AlignedBuffer<std::uint8_t>> store;
  std::vector<GgufTensorToWrite> tensors;
  store.reserve(params.layout.tensors.size());
  for (const TensorInfo& t : params.layout.tensors) {
    const bool matrix = t.shape.size() == 2;
    const bool embed = t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight";
    const DType dt = !matrix ? DType::kF32 : embed ? o.embed_dtype : o.matrix_dtype;
    const std::int64_t cols = t.shape.back();
    const std::int64_t rows = matrix ? t.shape[0] : 1;
    ZEBRA_CHECK(cols % dtype_block_elements(dt) == 0, "GGUF export: tensor '", t.name, "' has ", cols,
                " columns, not a multiple of ", to_string(dt), "'s block of ", dtype_block_elements(dt), " values");
    const std::size_t rb = dtype_row_bytes(dt, cols);
    AlignedBuffer<std::uint8_t> bytes(rb * static_cast<std::size_t>(rows));
    const float* src = params.tensor(t);
    for (std::int64_t r = 0; r < rows; ++r) quant::quantize_row(dt, src + r * cols, bytes.data() + rb * r, cols);
    const bool is_q = t.name.ends_with("self_attn.q_proj.weight"), is_k = t.name.ends_with("self_attn.k_proj.weight");
    if (is_q || is_k) permute_rows_half_to_interleaved(bytes.data(), is_q ? c.n_heads : c.n_kv_heads, c.head_dim, rb);
    store.push_back(std::move(bytes));
    tensors.push_back(GgufTensorToWrite{gguf_tensor_name(t.name), dt, t.shape,
                                        std::span<const std::uint8_t>(store.back().data(), store.back().size())});
  }
  write_gguf(path, meta, tensors);
  GgufExportSummary s;
  s.tensors = tensors.size();
  for (const GgufTensorToWrite& t : tensors) s.tensor_bytes += t.bytes.size();
  return s;
}

}  // namespace zebra
