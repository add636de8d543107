// Linear layer without bias, weights in PyTorch nn.Linear layout.
//   inp [N, IC], weight [OC, IC], out [N, OC]:  out = inp . weight^T
// The products go to the BLAS (OpenBLAS, OpenMP build, sharing the engine's thread pool); see
// docs/performance.md for what it reaches on the shapes of a training step.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"

namespace zebra {

// Overwrites out. options: threads, gemm backend, bf16 (ops/compute.hpp).
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features, const ComputeOptions& options = {});

// The strided form: out [N, ldo] (columns [0, OC) of each row overwritten, the rest untouched), inp [N, IC],
// weight [OC, IC] with rows ldw elements apart (ldo >= OC, ldw >= IC).
template <typename T>
void matmul_forward_strided(T* out, std::int64_t ldo, const T* inp, const T* weight, std::int64_t ldw, std::int64_t n,
                            std::int64_t in_features, std::int64_t out_features, const ComputeOptions& options = {});

// dinp [N, IC] is overwritten (skipped when null); dweight [OC, IC] accumulates (+=) (skipped when null).
template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, std::int64_t n,
                     std::int64_t in_features, std::int64_t out_features, const ComputeOptions& options = {});

// General row-major C[M,N] = alpha * op(A) . op(B) + beta * C through the BLAS, spread over options.threads as
// options.gemm says (options.bf16 is not used here).
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const ComputeOptions& options = {});

// x rounded to the nearest bfloat16 (ties to even), as a float: the top 16 bits of the result are the bf16
// value and the low 16 are zero. NaN stays NaN; values beyond the bf16 range round to infinity.
float round_to_bf16(float x);
// dst[i] = round_to_bf16(src[i]) for i < n (dst may equal src).
void round_to_bf16(float* dst, const float* src, std::int64_t n);

// Largest scratch one BF16 matmul call of these sizes allocates (rounded copies of the weight and of a chunk
// of rows), for memory planning.
std::int64_t bf16_scratch_bytes(std::int64_t n, std::int64_t in_features, std::int64_t out_features);

}  // namespace zebra
