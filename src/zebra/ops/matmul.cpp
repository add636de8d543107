#include "zebra/ops/matmul.hpp"

#include <cblas.h>

namespace zebra {

namespace {
inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }
}  // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                 std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tr(trans_a), tr(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                  const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
                  std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tr(trans_a), tr(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features) {
  if (n == 0) return;
  gemm<T>(false, true, n, out_features, in_features, T(1), inp, in_features, weight, in_features, T(0), out,
          out_features);
}

template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, std::int64_t n,
                     std::int64_t in_features, std::int64_t out_features) {
  if (n == 0) return;
  if (dinp != nullptr) {
    // dinp[N, IC] = dout[N, OC] . weight[OC, IC]
    gemm<T>(false, false, n, in_features, out_features, T(1), dout, out_features, weight, in_features, T(0), dinp,
            in_features);
  }
  if (dweight != nullptr) {
    // dweight[OC, IC] += dout^T[OC, N] . inp[N, IC]
    gemm<T>(true, false, out_features, in_features, n, T(1), dout, out_features, inp, in_features, T(1), dweight,
            in_features);
  }
}

template void matmul_forward<float>(float*, const float*, const float*, std::int64_t, std::int64_t, std::int64_t);
template void matmul_forward<double>(double*, const double*, const double*, std::int64_t, std::int64_t, std::int64_t);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*, std::int64_t,
                                     std::int64_t, std::int64_t);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*, std::int64_t,
                                      std::int64_t, std::int64_t);

}  // namespace zebra
