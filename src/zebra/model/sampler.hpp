// Token sampling from logits: greedy, temperature, top-k, top-p (nucleus), min-p, repetition
// penalty, seeded. Filters apply in llama.cpp's order: repetition penalty, top-k, top-p, min-p,
// temperature.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "zebra/util/rng.hpp"

namespace zebra {

struct SamplerOptions {
  double temperature = 0.8;   // 0 = greedy
  std::int64_t top_k = 40;    // 0 = off
  double top_p = 0.95;        // 1 = off
  double min_p = 0.0;         // 0 = off; keep tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // 1 = off; CTRL-style: positive logits divided, negative multiplied
  std::int64_t repeat_last_n = 64;  // tokens of history the penalty looks at
  std::uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options = {}) : options_(options), rng_(options.seed) {}
  // logits[V] (modified in place by the penalty); history: tokens so far (for the penalty).
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history = {});
  const SamplerOptions& options() const { return options_; }

 private:
  SamplerOptions options_;
  Rng rng_;
  std::vector<std::pair<float, std::int32_t>> candidates_;
};

}  // namespace zebra
