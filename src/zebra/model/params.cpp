#include "zebra/model/params.hpp"

#include <cmath>

#include "zebra/util/error.hpp"
#include "zebra/util/memory.hpp"

namespace zebra {

namespace {

// Adds a tensor, checking the element count for overflow (configs come from untrusted files).
void add_tensor(ParamLayout& layout, std::string name, std::vector<std::int64_t> shape, bool is_norm = false,
                bool is_embedding = false) {
  std::size_t numel = 1;
  for (std::int64_t d : shape) {
    if (d <= 0) fail("parameter '", name, "': dimension ", d, " is not positive");
    if (numel > (std::size_t{1} << 40) / static_cast<std::size_t>(d)) {
      fail("parameter '", name, "': too many elements (limit 2^40)");
    }
    numel *= static_cast<std::size_t>(d);
  }
  TensorInfo t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.offset = layout.total;
  t.numel = numel;
  t.is_norm = is_norm;
  t.is_embedding = is_embedding;
  t.decay = !is_norm && !is_embedding;
  layout.total += numel;
  layout.tensors.push_back(std::move(t));
}

// A config may come from an untrusted file: parameters this machine cannot hold are refused before the
// allocation (which would otherwise end in std::bad_alloc or the OOM killer), naming the largest tensor and the
// config fields that size it.
void check_fits_in_memory(const ModelConfig& c, const ParamLayout& layout, std::size_t element_bytes) {
  const std::int64_t available = available_memory_bytes();
  if (available <= 0 || layout.tensors.empty()) return;  // unknown: let the allocation decide
  const double bytes = static_cast<double>(layout.total) * static_cast<double>(element_bytes);
  if (bytes <= static_cast<double>(available)) return;
  const TensorInfo* largest = &layout.tensors[0];
  for (const TensorInfo& t : layout.tensors) {
    if (t.numel > largest->numel) largest = &t;
  }
  std::string dims;
  for (std::size_t i = 0; i < largest->shape.size(); ++i) dims += str_cat(i ? " x " : "", largest->shape[i]);
  fail("the model's ", layout.total, " parameters need ", bytes / 1e9, " GB, more than the ",
       static_cast<double>(available) / 1e9, " GB of memory available (largest tensor '", largest->name, "' [", dims,
       "]; config fields vocab_size ", c.vocab_size, ", hidden_size ", c.d_model, ", intermediate_size ", c.ffn_dim,
       ", num_hidden_layers ", c.n_layers, ")");
}

}  // namespace

const TensorInfo* ParamLayout::find(const std::string& name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

ParamLayout make_param_layout(const ModelConfig& c) {
  c.validate();
  ParamLayout layout;
  const std::int64_t D = c.d_model, F = c.ffn_dim;
  add_tensor(layout, "model.embed_tokens.weight", {c.vocab_size, D}, false, true);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    add_tensor(layout, "model.embed_positions.weight", {c.max_seq_len, D}, false, true);
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add_tensor(layout, p + "input_layernorm.weight", {D}, true);
    add_tensor(layout, p + "self_attn.q_proj.weight", {c.q_dim(), D});
    add_tensor(layout, p + "self_attn.k_proj.weight", {c.kv_dim(), D});
    add_tensor(layout, p + "self_attn.v_proj.weight", {c.kv_dim(), D});
    add_tensor(layout, p + "self_attn.o_proj.weight", {D, c.q_dim()});
    add_tensor(layout, p + "post_attention_layernorm.weight", {D}, true);
    add_tensor(layout, p + "mlp.gate_proj.weight", {F, D});
    add_tensor(layout, p + "mlp.up_proj.weight", {F, D});
    add_tensor(layout, p + "mlp.down_proj.weight", {D, F});
  }
  add_tensor(layout, "model.norm.weight", {D}, true);
  if (!c.tie_embeddings) add_tensor(layout, "lm_head.weight", {c.vocab_size, D});
  return layout;
}

template <typename T>
ParamViews<T> make_views(const ModelConfig& c, const ParamLayout& layout, T* base) {
  ParamViews<T> v;
  std::size_t i = 0;
  auto next = [&]() { return base + layout.tensors.at(i++).offset; };
  v.embed = next();
  if (c.pos_embedding == PosEmbedding::kLearned) v.pos_embed = next();
  v.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (auto& w : v.layers) {
    w.attn_norm = next();
    w.wq = next();
    w.wk = next();
    w.wv = next();
    w.wo = next();
    w.ffn_norm = next();
    w.w_gate = next();
    w.w_up = next();
    w.w_down = next();
  }
  v.final_norm = next();
  v.lm_head = c.tie_embeddings ? v.embed : next();
  return v;
}

template <typename T>
ParameterSet<T>::ParameterSet(const ModelConfig& c) : config(c), layout(make_param_layout(c)) {
  check_fits_in_memory(config, layout, sizeof(T));
  data.resize(layout.total);
  views = make_views(config, layout, data.data());
}

template <typename T>
void init_parameters(ParameterSet<T>& params, std::uint64_t seed, double init_std) {
  Rng rng(seed);
  const double residual_std = init_std / std::sqrt(2.0 * static_cast<double>(params.config.n_layers));
  for (const TensorInfo& t : params.layout.tensors) {
    T* p = params.tensor(t);
    if (t.is_norm) {
      for (std::size_t i = 0; i < t.numel; ++i) p[i] = T(1);
      continue;
    }
    bool residual = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
    double std = residual ? residual_std : init_std;
    for (std::size_t i = 0; i < t.numel; ++i) p[i] = static_cast<T>(rng.normal() * std);
  }
}

template struct ParameterSet<float>;
template struct ParameterSet<double>;
template ParamViews<float> make_views<float>(const ModelConfig&, const ParamLayout&, float*);
template ParamViews<double> make_views<double>(const ModelConfig&, const ParamLayout&, double*);
template void init_parameters<float>(ParameterSet<float>&, std::uint64_t, double);
template void init_parameters<double>(ParameterSet<double>&, std::uint64_t, double);

}  // namespace zebra
