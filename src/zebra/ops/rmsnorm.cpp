#include "zebra/ops/rmsnorm.hpp"

#include <cmath>
#include <vector>

#include <omp.h>

namespace zebra {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t d, double eps) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const T* x = inp + i * d;
    T* y = out + i * d;
    T sum_sq = 0;  // float accumulation of d <= a few thousand squares: relative error ~d*eps/2 worst case
    for (std::int64_t k = 0; k < d; ++k) sum_sq += x[k] * x[k];
    T r = T(1) / std::sqrt(sum_sq / static_cast<T>(d) + static_cast<T>(eps));
    rstd[i] = r;
    for (std::int64_t k = 0; k < d; ++k) y[k] = x[k] * r * weight[k];
  }
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      std::int64_t n, std::int64_t d) {
  // y_k = x_k r g_k, r = (mean(x^2)+eps)^-1/2, dr/dx_k = -r^3 x_k / d
  // dx_k = r g_k dy_k - x_k r^3/d * sum_j dy_j g_j x_j
  // dweight is reduced per thread, then summed, so that threads never write the same element.
  int n_threads = omp_get_max_threads();
  std::vector<T> partial(static_cast<std::size_t>(n_threads) * static_cast<std::size_t>(d), T(0));
#pragma omp parallel
  {
    T* dw = partial.data() + static_cast<std::int64_t>(omp_get_thread_num()) * d;
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const T* x = inp + i * d;
      const T* dy = dout + i * d;
      T* dx = dinp + i * d;
      T r = rstd[i];
      T dot = 0;
      for (std::int64_t k = 0; k < d; ++k) dot += dy[k] * weight[k] * x[k];
      T c = dot * r * r * r / static_cast<T>(d);
      for (std::int64_t k = 0; k < d; ++k) {
        dx[k] = r * weight[k] * dy[k] - x[k] * c;
        dw[k] += dy[k] * x[k] * r;
      }
    }
  }
  for (int t = 0; t < n_threads; ++t) {
    const T* dw = partial.data() + static_cast<std::int64_t>(t) * d;
    for (std::int64_t k = 0; k < d; ++k) dweight[k] += dw[k];
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, std::int64_t, std::int64_t, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, std::int64_t, std::int64_t,
                                      double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      std::int64_t, std::int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       std::int64_t, std::int64_t);

}  // namespace zebra
