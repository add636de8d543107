#include "zebra/ops/cross_entropy.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/simd/elementwise.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

template <typename T>
double cross_entropy_forward(T* logits, const std::int32_t* targets, std::int64_t rows, std::int64_t vocab,
                             std::int64_t* n_valid, const ComputeOptions& options) {
  const ThreadScope threads(options);
  // Per-row losses summed serially afterwards: an OpenMP reduction may combine partial sums in a
  // different order from run to run, and resumed training must reproduce losses bit for bit.
  std::vector<double> row_loss(static_cast<std::size_t>(rows), 0.0);
  for (std::int64_t i = 0; i < rows; ++i) {
    ZEBRA_CHECK(targets[i] < vocab, "cross_entropy: target ", targets[i], " at row ", i, " outside [0, ", vocab, ")");
  }
#pragma omp parallel for schedule(static) if (worth_parallel(rows * vocab))
  for (std::int64_t i = 0; i < rows; ++i) {
    T* z = logits + i * vocab;
    if constexpr (std::is_same_v<T, float>) {
      simd::elementwise(options.simd).softmax(z, vocab);
    } else {
      T max_z = z[0];
      for (std::int64_t k = 1; k < vocab; ++k) max_z = std::max(max_z, z[k]);
      T sum = 0;
      for (std::int64_t k = 0; k < vocab; ++k) {
        z[k] = std::exp(z[k] - max_z);
        sum += z[k];
      }
      T inv = T(1) / sum;
      for (std::int64_t k = 0; k < vocab; ++k) z[k] *= inv;
    }
    if (targets[i] >= 0) {
      // -log p computed from the normalised probability; clamp keeps an underflowed p finite.
      row_loss[static_cast<std::size_t>(i)] = -std::log(std::max(static_cast<double>(z[targets[i]]), 1e-300));
    }
  }
  double loss = 0.0;
  for (std::int64_t i = 0; i < rows; ++i) {
    if (targets[i] >= 0) {
      loss += row_loss[static_cast<std::size_t>(i)];
      *n_valid += 1;
    }
  }
  return loss;
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const std::int32_t* targets, std::int64_t rows,
                            std::int64_t vocab, T scale, const ComputeOptions& options) {
  const ThreadScope threads(options);
#pragma omp parallel for schedule(static) if (worth_parallel(rows * vocab))
  for (std::int64_t i = 0; i < rows; ++i) {
    T* dz = dlogits + i * vocab;
    const T* p = probs + i * vocab;
    if (targets[i] < 0) {
      std::fill(dz, dz + vocab, T(0));
      continue;
    }
    for (std::int64_t k = 0; k < vocab; ++k) dz[k] = scale * p[k];
    dz[targets[i]] -= scale;
  }
}

template double cross_entropy_forward<float>(float*, const std::int32_t*, std::int64_t, std::int64_t, std::int64_t*,
                                             const ComputeOptions&);
template double cross_entropy_forward<double>(double*, const std::int32_t*, std::int64_t, std::int64_t, std::int64_t*,
                                              const ComputeOptions&);
template void cross_entropy_backward<float>(float*, const float*, const std::int32_t*, std::int64_t, std::int64_t,
                                            float, const ComputeOptions&);
template void cross_entropy_backward<double>(double*, const double*, const std::int32_t*, std::int64_t, std::int64_t,
                                             double, const ComputeOptions&);

}  // namespace zebra
