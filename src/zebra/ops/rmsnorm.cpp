#include "zebra/ops/rmsnorm.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/simd/elementwise.hpp"

namespace zebra {

namespace {

// Rows per block of the weight-gradient reduction: each block sums its rows into its own partial, and the
// partials are added in block order, so dweight does not depend on the thread count.
constexpr std::int64_t kRowsPerBlock = 64;

}  // namespace

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t d, double eps,
                     const ComputeOptions& options) {
  const ThreadScope threads(options);
  if constexpr (std::is_same_v<T, float>) {
    const simd::ElementwiseKernels& k = simd::elementwise(options.simd);
#pragma omp parallel for schedule(static) if (worth_parallel(n * d))
    for (std::int64_t i = 0; i < n; ++i) {
      // Float sum of d squares (in W lanes): relative error <= ~d/W * 2^-24, far below what the norm needs.
      const float r = 1.0f / std::sqrt(k.sum_squares(inp + i * d, d) / static_cast<float>(d) + static_cast<float>(eps));
      rstd[i] = r;
      k.scale_mul(out + i * d, inp + i * d, r, weight, d);
    }
  } else {
#pragma omp parallel for schedule(static) if (worth_parallel(n * d))
    for (std::int64_t i = 0; i < n; ++i) {
      const T* x = inp + i * d;
      T* y = out + i * d;
      T sum_sq = 0;
      for (std::int64_t k = 0; k < d; ++k) sum_sq += x[k] * x[k];
      T r = T(1) / std::sqrt(sum_sq / static_cast<T>(d) + static_cast<T>(eps));
      rstd[i] = r;
      for (std::int64_t k = 0; k < d; ++k) y[k] = x[k] * r * weight[k];
    }
  }
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, std::int64_t n,
                      std::int64_t d, const ComputeOptions& options) {
  const ThreadScope threads(options);
  // y_k = x_k r g_k, r = (mean(x^2)+eps)^-1/2, dr/dx_k = -r^3 x_k / d
  // dx_k = r g_k dy_k - x_k r^3/d * sum_j dy_j g_j x_j
  const std::int64_t n_blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<T> partial(static_cast<std::size_t>(n_blocks * d), T(0));
  const bool parallel = worth_parallel(n * d);
#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < n_blocks; ++blk) {
      T* dw = partial.data() + blk * d;
      const std::int64_t i1 = std::min(n, (blk + 1) * kRowsPerBlock);
      for (std::int64_t i = blk * kRowsPerBlock; i < i1; ++i) {
        const T* x = inp + i * d;
        const T* dy = dout + i * d;
        T* dx = dinp + i * d;
        const T r = rstd[i];
        if constexpr (std::is_same_v<T, float>) {
          const simd::ElementwiseKernels& k = simd::elementwise(options.simd);
          const float c = k.dot3(dy, weight, x, d) * r * r * r / static_cast<float>(d);
          k.rms_backward_row(dx, dw, dy, x, weight, r, c, d);
        } else {
          T dot = 0;
          for (std::int64_t k = 0; k < d; ++k) dot += dy[k] * weight[k] * x[k];
          const T c = dot * r * r * r / static_cast<T>(d);
          for (std::int64_t k = 0; k < d; ++k) {
            dx[k] = r * weight[k] * dy[k] - x[k] * c;
            dw[k] += dy[k] * x[k] * r;
          }
        }
      }
    }
    // dweight += the block partials, in block order, each thread a range of columns.
#pragma omp for schedule(static)
    for (std::int64_t k = 0; k < d; ++k) {
      T sum = 0;
      for (std::int64_t blk = 0; blk < n_blocks; ++blk) sum += partial[static_cast<std::size_t>(blk * d + k)];
      dweight[k] += sum;
    }
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, std::int64_t, std::int64_t, double,
                                     const ComputeOptions&);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, std::int64_t, std::int64_t,
                                      double, const ComputeOptions&);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      std::int64_t, std::int64_t, const ComputeOptions&);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       std::int64_t, std::int64_t, const ComputeOptions&);

}  // namespace zebra
