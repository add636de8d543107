#include "zebra/ops/swiglu.hpp"

#include <cmath>
#include <type_traits>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/simd/elementwise.hpp"

namespace zebra {

template <typename T>
void swiglu_forward(T* out, const T* gate_up, std::int64_t n, std::int64_t f, const ComputeOptions& options) {
  const ThreadScope threads(options);
#pragma omp parallel for schedule(static) if (worth_parallel(n * f))
  for (std::int64_t i = 0; i < n; ++i) {
    const T* g = gate_up + i * 2 * f;
    const T* u = g + f;
    T* y = out + i * f;
    if constexpr (std::is_same_v<T, float>) {
      simd::elementwise(options.simd).swiglu(y, g, u, f);
    } else {
      for (std::int64_t k = 0; k < f; ++k) {
        T s = T(1) / (T(1) + std::exp(-g[k]));
        y[k] = g[k] * s * u[k];
      }
    }
  }
}

template <typename T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, std::int64_t n, std::int64_t f,
                     const ComputeOptions& options) {
  const ThreadScope threads(options);
  // silu(g) = g s, s = sigmoid(g); d silu/dg = s (1 + g (1 - s))
#pragma omp parallel for schedule(static) if (worth_parallel(n * f))
  for (std::int64_t i = 0; i < n; ++i) {
    const T* g = gate_up + i * 2 * f;
    const T* u = g + f;
    const T* dy = dout + i * f;
    T* dg = dgate_up + i * 2 * f;
    T* du = dg + f;
    if constexpr (std::is_same_v<T, float>) {
      simd::elementwise(options.simd).swiglu_backward(dg, du, dy, g, u, f);
    } else {
      for (std::int64_t k = 0; k < f; ++k) {
        T s = T(1) / (T(1) + std::exp(-g[k]));
        T silu = g[k] * s;
        du[k] = dy[k] * silu;
        dg[k] = dy[k] * u[k] * s * (T(1) + g[k] * (T(1) - s));
      }
    }
  }
}

template void swiglu_forward<float>(float*, const float*, std::int64_t, std::int64_t, const ComputeOptions&);
template void swiglu_forward<double>(double*, const double*, std::int64_t, std::int64_t, const ComputeOptions&);
template void swiglu_backward<float>(float*, const float*, const float*, std::int64_t, std::int64_t,
                                     const ComputeOptions&);
template void swiglu_backward<double>(double*, const double*, const double*, std::int64_t, std::int64_t,
                                      const ComputeOptions&);

}  // namespace zebra
