#include "zebra/eval/position_curve.hpp"

#include <algorithm>
#include <cmath>

#include "zebra/util/error.hpp"

namespace zebra {

const char* to_string(PositionScale scale) { return scale == PositionScale::kGeometric ? "geometric" : "linear"; }

PositionScale parse_position_scale(const std::string& name) {
  if (name == "geometric") return PositionScale::kGeometric;
  if (name == "linear") return PositionScale::kLinear;
  fail("position scale must be 'geometric' or 'linear', got '", name, "'");
}

double PositionBucket::center(PositionScale scale) const {
  const double a = static_cast<double>(first), b = static_cast<double>(last);
  return scale == PositionScale::kGeometric ? std::sqrt(a * b) : 0.5 * (a + b);
}

std::vector<PositionBucket> position_buckets(std::int64_t ctx, std::int64_t n_buckets, PositionScale scale) {
  ZEBRA_CHECK(ctx >= 2, "position buckets: ctx must be >= 2, got ", ctx);
  ZEBRA_CHECK(n_buckets >= 1, "position buckets: the number of buckets must be >= 1, got ", n_buckets);
  // Edges e_0 = 1 < e_1 < ... < e_m = ctx; bucket k holds positions e_k .. e_{k+1} - 1.
  std::vector<std::int64_t> edges = {1};
  for (std::int64_t k = 1; k < n_buckets; ++k) {
    const double f = static_cast<double>(k) / static_cast<double>(n_buckets);
    const double x = scale == PositionScale::kGeometric ? std::pow(static_cast<double>(ctx), f)
                                                        : 1.0 + f * static_cast<double>(ctx - 1);
    const std::int64_t e = std::max(edges.back() + 1, static_cast<std::int64_t>(std::llround(x)));
    if (e >= ctx) break;
    edges.push_back(e);
  }
  edges.push_back(ctx);
  std::vector<PositionBucket> buckets;
  for (std::size_t k = 0; k + 1 < edges.size(); ++k)
    buckets.push_back(PositionBucket{edges[k], edges[k + 1] - 1, 0, 0.0});
  return buckets;
}

std::vector<PositionBucket> bucket_position_losses(std::span<const double> loss_sum,
                                                   std::span<const std::int64_t> count, std::int64_t n_buckets,
                                                   PositionScale scale) {
  ZEBRA_CHECK(loss_sum.size() == count.size(), "position buckets: ", loss_sum.size(), " loss sums but ", count.size(),
              " counts");
  std::vector<PositionBucket> buckets = position_buckets(static_cast<std::int64_t>(loss_sum.size()), n_buckets, scale);
  for (PositionBucket& b : buckets) {
    for (std::int64_t p = b.first; p <= b.last; ++p) {
      b.loss_sum += loss_sum[static_cast<std::size_t>(p)];
      b.count += count[static_cast<std::size_t>(p)];
    }
  }
  return buckets;
}

}  // namespace zebra
