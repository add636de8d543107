#include "zebra/model/flops.hpp"

#include <algorithm>

#include "zebra/model/params.hpp"
#include "zebra/ops/attention.hpp"

namespace zebra {

double layer_attention_flops(const ModelConfig& c, std::int64_t layer, std::int64_t seq_len) {
  const double pairs = attention_visible_pairs(seq_len, c.layer_window(layer));
  return 4.0 * static_cast<double>(c.head_dim * c.n_heads) * pairs;
}

FlopCount forward_flops(const ModelConfig& c, std::int64_t seq_len) {
  const double d = static_cast<double>(c.d_model), f = static_cast<double>(c.ffn_dim);
  const double qd = static_cast<double>(c.q_dim()), kvd = static_cast<double>(c.kv_dim());
  const double per_layer = 2.0 * d * (qd + 2.0 * kvd) + 2.0 * qd * d + 2.0 * d * 2.0 * f + 2.0 * f * d;
  FlopCount out;
  out.projections = per_layer * static_cast<double>(c.n_layers);
  for (std::int64_t l = 0; l < c.n_layers; ++l) out.attention += layer_attention_flops(c, l, seq_len);
  out.attention /= static_cast<double>(seq_len);
  out.lm_head = 2.0 * d * static_cast<double>(c.vocab_size);
  return out;
}

std::int64_t kv_cache_bytes(const ModelConfig& c, std::int64_t context, std::int64_t bytes_per_value) {
  std::int64_t positions = 0;
  for (std::int64_t l = 0; l < c.n_layers; ++l) positions += std::min(context, c.layer_window(l));
  return positions * 2 * c.kv_dim() * bytes_per_value;
}

std::int64_t parameter_count(const ModelConfig& c) { return static_cast<std::int64_t>(make_param_layout(c).total); }

}  // namespace zebra
