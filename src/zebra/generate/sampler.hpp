// Token sampling from logits: greedy, temperature, top-k, top-p (nucleus), min-p, repetition
// penalty, seeded. Filters apply in llama.cpp's order: repetition penalty, top-k, top-p, min-p,
// temperature; top-p and min-p look at the probabilities at temperature 1, as llama.cpp does.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "zebra/util/rng.hpp"

namespace zebra {

struct SamplerOptions {
  double temperature = 0.8;         // 0 = greedy
  std::int64_t top_k = 40;          // 0 = off
  double top_p = 0.95;              // 1 = off
  double min_p = 0.0;               // 0 = off; keep tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // 1 = off; CTRL-style: positive logits divided, negative multiplied
  std::int64_t repeat_last_n = 64;  // tokens of history the penalty looks at
  std::uint64_t seed = 0;
};

// The greedy sampler (argmax, ties to the lowest id): what retrieval evaluations decode with.
inline SamplerOptions greedy_sampling() {
  SamplerOptions o;
  o.temperature = 0.0;
  return o;
}

struct TokenProb {
  std::int32_t id = 0;
  double p = 0.0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options = {}) : options_(options), rng_(options.seed) {}
  // logits[V] (modified in place by the penalty); history: tokens so far (for the penalty).
  // Greedy: the argmax, ties to the lowest id, and no random draw.
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history = {});
  // The distribution sample() draws from, without drawing: the surviving candidates in descending order
  // of logit (ties by id) with probabilities summing to 1 (greedy: the argmax with p = 1).
  std::vector<TokenProb> distribution(std::span<float> logits, std::span<const std::int32_t> history = {});
  const SamplerOptions& options() const { return options_; }

 private:
  // Applies the penalty and, unless greedy, the filters: leaves the candidates in candidates_[0, keep) and
  // their unnormalised weights at the temperature in weights_. Returns keep (0 for greedy).
  std::size_t filter(std::span<float> logits, std::span<const std::int32_t> history);
  static std::int32_t argmax(std::span<const float> logits);

  SamplerOptions options_;
  Rng rng_;
  std::vector<std::pair<float, std::int32_t>> candidates_;
  std::vector<double> probs_, weights_;
};

}  // namespace zebra
