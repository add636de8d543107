#include "zebra/ops/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/simd/elementwise.hpp"

namespace zebra {

namespace {
// Elements per parallel chunk: whole vectors for every path, large enough to amortise the dispatch.
constexpr std::int64_t kChunk = 1 << 14;
}  // namespace

template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, std::int64_t n, const AdamWHyper& h, std::int64_t step,
                  bool decay, double grad_scale, const ComputeOptions& options) {
  const ThreadScope threads(options);
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(h.beta1, static_cast<double>(step))));
  const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(h.beta2, static_cast<double>(step))));
  const T lr = static_cast<T>(h.lr), eps = static_cast<T>(h.eps), gs = static_cast<T>(grad_scale);
  const T wd = decay ? static_cast<T>(h.weight_decay) : T(0);
  if constexpr (std::is_same_v<T, float>) {
    const simd::AdamWScalars s{b1, b2, c1, c2, lr, eps, wd, gs};
    const simd::ElementwiseKernels& k = simd::elementwise(options.simd);
    const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (worth_parallel(n))
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
      k.adamw(params + i0, grads + i0, m + i0, v + i0, len, s);
    }
  } else {
#pragma omp parallel for schedule(static) if (worth_parallel(n))
    for (std::int64_t i = 0; i < n; ++i) {
      T g = grads[i] * gs;
      m[i] = b1 * m[i] + (T(1) - b1) * g;
      v[i] = b2 * v[i] + (T(1) - b2) * g * g;
      T m_hat = m[i] * c1, v_hat = v[i] * c2;
      params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * params[i]);
    }
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, std::int64_t, const AdamWHyper&, std::int64_t,
                                  bool, double, const ComputeOptions&);
template void adamw_update<double>(double*, const double*, double*, double*, std::int64_t, const AdamWHyper&,
                                   std::int64_t, bool, double, const ComputeOptions&);

}  // namespace zebra
