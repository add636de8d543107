// All parameters in one contiguous buffer with named views (llm.c style). Gradients and optimizer
// moments are buffers of the same layout, so one index addresses the same parameter in all of them.
//
// Layout, in this order (shapes are [rows, cols], row-major, Linear weights as [out, in]):
//   embed          [V, D]                      model.embed_tokens.weight
//   pos_embed      [P, D]   (pos=learned)      model.embed_positions.weight
//   per layer l:
//     attn_norm    [D]                         model.layers.l.input_layernorm.weight
//     wq           [H*hd, D]  \                model.layers.l.self_attn.q_proj.weight
//     wk           [Hkv*hd, D] > contiguous:   model.layers.l.self_attn.k_proj.weight
//     wv           [Hkv*hd, D] /  one QKV GEMM model.layers.l.self_attn.v_proj.weight
//     wo           [D, H*hd]                   model.layers.l.self_attn.o_proj.weight
//     ffn_norm     [D]                         model.layers.l.post_attention_layernorm.weight
//     w_gate       [F, D] \  contiguous:       model.layers.l.mlp.gate_proj.weight
//     w_up         [F, D] /  one gate|up GEMM  model.layers.l.mlp.up_proj.weight
//     w_down       [D, F]                      model.layers.l.mlp.down_proj.weight
//   final_norm     [D]                         model.norm.weight
//   lm_head        [V, D]   (untied only)      lm_head.weight
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

struct TensorInfo {
  std::string name;                 // Hugging Face tensor name
  std::vector<std::int64_t> shape;  // row-major
  std::size_t offset = 0;           // in elements from the start of the buffer
  std::size_t numel = 0;
  bool is_norm = false;       // a norm gain (initialised to 1)
  bool is_embedding = false;  // token or position embedding table
  bool decay = true;          // receives weight decay by default (not norms, not embeddings)
};

// The offsets of every tensor, for a config. Pure arithmetic: no storage.
struct ParamLayout {
  std::vector<TensorInfo> tensors;
  std::size_t total = 0;
  const TensorInfo* find(const std::string& name) const;  // null when absent
};

ParamLayout make_param_layout(const ModelConfig& config);

template <typename T>
struct LayerWeights {
  T* attn_norm;  // [D]
  T* wq;         // [H*hd, D]; wk and wv follow directly: [(H + 2 Hkv) * hd, D] as one matrix
  T* wk;         // [Hkv*hd, D]
  T* wv;         // [Hkv*hd, D]
  T* wo;         // [D, H*hd]
  T* ffn_norm;   // [D]
  T* w_gate;     // [F, D]; w_up follows directly: [2F, D] as one matrix
  T* w_up;       // [F, D]
  T* w_down;     // [D, F]
};

// Named views into a buffer laid out by ParamLayout.
template <typename T>
struct ParamViews {
  T* embed = nullptr;      // [V, D]
  T* pos_embed = nullptr;  // [P, D] or null
  std::vector<LayerWeights<T>> layers;
  T* final_norm = nullptr;  // [D]
  T* lm_head = nullptr;     // [V, D]; equals embed when tied
};

template <typename T>
ParamViews<T> make_views(const ModelConfig& config, const ParamLayout& layout, T* base);

// A buffer plus its views.
template <typename T>
struct ParameterSet {
  ModelConfig config;
  ParamLayout layout;
  AlignedBuffer<T> data;
  ParamViews<T> views;

  ParameterSet() = default;
  explicit ParameterSet(const ModelConfig& c);
  ParameterSet(const ParameterSet& other) : config(other.config), layout(other.layout), data(other.data) {
    views = make_views(config, layout, data.data());
  }
  ParameterSet& operator=(const ParameterSet& other) {
    config = other.config;
    layout = other.layout;
    data = other.data;
    views = make_views(config, layout, data.data());
    return *this;
  }
  // Moves keep the buffer, so the moved views stay valid (and no second copy of the weights is ever made).
  ParameterSet(ParameterSet&&) noexcept = default;
  ParameterSet& operator=(ParameterSet&&) noexcept = default;
  T* tensor(const TensorInfo& t) { return data.data() + t.offset; }
  const T* tensor(const TensorInfo& t) const { return data.data() + t.offset; }
};

// Llama/GPT-2 practice: weights ~ N(0, std), std = init_std (0.02 by default); the projections that
// write into the residual stream (wo, w_down) use std / sqrt(2 * n_layers); norms are 1.
template <typename T>
void init_parameters(ParameterSet<T>& params, std::uint64_t seed, double init_std = 0.02);

}  // namespace zebra
