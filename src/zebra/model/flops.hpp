// Arithmetic cost of a config: FLOPs per token and KV-cache bytes. Pure counting, no storage.
//
// Conventions (docs/flops.md works one config by hand):
//   - a multiply-add is 2 FLOPs; norms, RoPE, softmax and SwiGLU elementwise work are not counted
//     (they are O(d) per token, below 1% at the sizes that matter);
//   - attention counts only visible (query, key) pairs: 4 * head_dim * n_heads FLOPs per pair
//     (QK^T and PV), averaged over the T positions of a sequence;
//   - training = 3 x forward (backward is two products per forward product), as in the PaLM/Chinchilla
//     "model FLOPs"; the flash-style backward recomputes QK^T once more, which `training_hardware`
//     adds on top.
#pragma once

#include <cstdint>

#include "zebra/model/config.hpp"

namespace zebra {

struct FlopCount {
  double projections = 0.0;  // Wq, Wk, Wv, Wo, gate, up, down over all layers, per token
  double attention = 0.0;    // scores and weighted values over all layers, per token (average over T)
  double lm_head = 0.0;      // per token
  double forward() const { return projections + attention + lm_head; }
  double training() const { return 3.0 * forward(); }
  // Including the extra QK^T recomputation of the flash-style backward.
  double training_hardware() const { return training() + 0.5 * attention; }
};

// Average forward FLOPs per token over a sequence of `seq_len` tokens.
FlopCount forward_flops(const ModelConfig& c, std::int64_t seq_len);

// Attention FLOPs of one layer for a whole sequence (forward).
double layer_attention_flops(const ModelConfig& c, std::int64_t layer, std::int64_t seq_len);

// KV-cache bytes for a context of `context` tokens with `bytes_per_value` per stored element:
// a global layer keeps every position, a local layer at most `window` of them.
std::int64_t kv_cache_bytes(const ModelConfig& c, std::int64_t context, std::int64_t bytes_per_value);

// Number of parameters (elements of the parameter buffer).
std::int64_t parameter_count(const ModelConfig& c);

}  // namespace zebra
