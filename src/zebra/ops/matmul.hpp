// Linear layer without bias, weights in PyTorch nn.Linear layout.
//   inp [N, IC], weight [OC, IC], out [N, OC]:  out = inp . weight^T
#pragma once

#include <cstdint>

namespace zebra {

// Overwrites out.
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features);

// dinp [N, IC] is overwritten (skipped when null); dweight [OC, IC] accumulates (+=) (skipped when null).
template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, std::int64_t n,
                     std::int64_t in_features, std::int64_t out_features);

// General row-major C[M,N] = alpha * op(A) . op(B) + beta * C through the BLAS.
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

}  // namespace zebra
