// The tiny model and random token streams of the evaluation tests (arithmetic checks, not quality).
#pragma once

#include <cstdint>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::test {

inline constexpr std::int64_t kTinyVocab = 37;
inline constexpr std::int64_t kTinyDModel = 16;

// 2 layers (global, local window 5), d 16, 2 heads over 1 KV head of 8, untied lm head [37, 16].
inline ModelConfig tiny_eval_config() {
  ModelConfig c;
  c.vocab_size = kTinyVocab;
  c.d_model = kTinyDModel;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn_dim = 24;
  c.window = 5;
  c.group_size = 2;
  c.tie_embeddings = false;
  c.resolve();
  return c;
}

// n ids drawn uniformly from [0, vocab).
inline std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab)));
  return t;
}

}  // namespace zebra::test
