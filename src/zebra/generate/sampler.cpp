#include "zebra/generate/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace zebra {

std::int32_t Sampler::argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::size_t Sampler::filter(std::span<float> logits, std::span<const std::int32_t> history) {
  const std::int64_t vocab = static_cast<std::int64_t>(logits.size());
  if (options_.repetition_penalty != 1.0 && !history.empty()) {
    const std::size_t n =
        std::min(history.size(), static_cast<std::size_t>(std::max<std::int64_t>(0, options_.repeat_last_n)));
    std::unordered_set<std::int32_t> seen(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
    for (std::int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      float& l = logits[static_cast<std::size_t>(t)];
      l = l > 0 ? static_cast<float>(l / options_.repetition_penalty)
                : static_cast<float>(l * options_.repetition_penalty);
    }
  }
  if (options_.temperature <= 0.0) return 0;
  candidates_.clear();
  for (std::int64_t i = 0; i < vocab; ++i)
    candidates_.emplace_back(logits[static_cast<std::size_t>(i)], static_cast<std::int32_t>(i));
  // Descending by logit, ties by id: deterministic.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::size_t keep = candidates_.size();
  if (options_.top_k > 0 && static_cast<std::size_t>(options_.top_k) < keep) {
    keep = static_cast<std::size_t>(options_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep), candidates_.end(),
                      by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Probabilities at temperature 1 for the p-based filters, as llama.cpp does.
  const double max_logit = candidates_.front().first;
  probs_.resize(keep);
  double sum = 0.0;
  for (std::size_t i = 0; i < keep; ++i)
    sum += probs_[i] = std::exp(static_cast<double>(candidates_[i].first) - max_logit);
  if (options_.top_p < 1.0) {
    double cum = 0.0;
    std::size_t n = 0;
    while (n < keep) {
      cum += probs_[n] / sum;
      ++n;
      if (cum >= options_.top_p) break;
    }
    keep = std::max<std::size_t>(n, 1);
  }
  if (options_.min_p > 0.0) {
    std::size_t n = 1;
    while (n < keep && probs_[n] >= options_.min_p * probs_[0]) ++n;
    keep = n;
  }
  weights_.resize(keep);
  for (std::size_t i = 0; i < keep; ++i) {
    weights_[i] = std::exp((static_cast<double>(candidates_[i].first) - max_logit) / options_.temperature);
  }
  return keep;
}

std::int32_t Sampler::sample(std::span<float> logits, std::span<const std::int32_t> history) {
  const std::size_t keep = filter(logits, history);
  if (keep == 0) return argmax(logits);
  double total = 0.0;
  for (std::size_t i = 0; i < keep; ++i) total += weights_[i];
  double r = rng_.uniform() * total;
  for (std::size_t i = 0; i < keep; ++i) {
    r -= weights_[i];
    if (r < 0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

std::vector<TokenProb> Sampler::distribution(std::span<float> logits, std::span<const std::int32_t> history) {
  const std::size_t keep = filter(logits, history);
  if (keep == 0) return {TokenProb{argmax(logits), 1.0}};
  double total = 0.0;
  for (std::size_t i = 0; i < keep; ++i) total += weights_[i];
  std::vector<TokenProb> out(keep);
  for (std::size_t i = 0; i < keep; ++i) out[i] = TokenProb{candidates_[i].second, weights_[i] / total};
  return out;
}

}  // namespace zebra
