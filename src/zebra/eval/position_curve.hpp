// Loss against token position: does the model predict better the more of the window it has read?
//
// A perplexity run sums the loss per window position p (the prediction of the window's token p from the p
// tokens before it, p = 1 .. ctx - 1; eval/perplexity.hpp). Buckets group consecutive positions:
//   geometric: edges e_k = round(ctx^(k / n)) for k = 0 .. n (e_0 = 1, e_n = ctx), bucket k = [e_k, e_{k+1});
//              an edge that would not advance past the previous one is moved to previous + 1 and the loop stops
//              at ctx, so short windows get fewer than n buckets. Equal width on a log axis: the first tokens,
//              where the loss falls fastest, get buckets of their own.
//   linear:    n buckets of (nearly) equal width over 1 .. ctx - 1 (fewer when ctx - 1 < n).
// Each bucket's loss is the mean over all tokens scored in it (sum of losses / count), so the count-weighted
// mean of the bucket losses is the overall mean loss.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace zebra {

enum class PositionScale { kGeometric, kLinear };
const char* to_string(PositionScale scale);
// "geometric" or "linear"; throws naming both otherwise.
PositionScale parse_position_scale(const std::string& name);

struct PositionBucket {
  std::int64_t first = 0;  // first window position in the bucket (inclusive)
  std::int64_t last = 0;   // last window position in the bucket (inclusive)
  std::int64_t count = 0;  // scored tokens in the bucket
  double loss_sum = 0.0;
  double mean_loss() const { return count > 0 ? loss_sum / static_cast<double>(count) : 0.0; }
  // Where to draw the bucket on a position axis: the geometric mean of first and last for geometric
  // buckets, the midpoint for linear ones.
  double center(PositionScale scale) const;
};

// Bucket boundaries for window length ctx (>= 2) and at most n_buckets (>= 1) buckets: [first, last] pairs
// covering 1 .. ctx - 1 in order without gaps.
std::vector<PositionBucket> position_buckets(std::int64_t ctx, std::int64_t n_buckets, PositionScale scale);

// The buckets filled from per-position sums and counts (indexed by position, size ctx; entry 0 is ignored).
std::vector<PositionBucket> bucket_position_losses(std::span<const double> loss_sum,
                                                   std::span<const std::int64_t> count, std::int64_t n_buckets,
                                                   PositionScale scale);

}  // namespace zebra
