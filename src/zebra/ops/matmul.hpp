// Linear layer without bias, weights in PyTorch nn.Linear layout.
//   inp [N, IC], weight [OC, IC], out [N, OC]:  out = inp . weight^T
// The products go to the BLAS (OpenBLAS, OpenMP build, sharing the engine's thread pool); see
// docs/performance.md for what it reaches on the shapes of a training step.
#pragma once

#include <cstdint>

namespace zebra {

struct MatmulOptions {
  // BF16 products: both inputs of every product are rounded to bfloat16 (round to nearest even) and the
  // products are accumulated in fp32, as a BF16 GEMM with fp32 accumulation computes them. float only (double
  // ignores it). The rounding runs in chunks of rows, so it needs only a bounded scratch (bf16_scratch_bytes).
  bool bf16 = false;
};

// Overwrites out.
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features, const MatmulOptions& options = {});

// dinp [N, IC] is overwritten (skipped when null); dweight [OC, IC] accumulates (+=) (skipped when null).
template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, std::int64_t n,
                     std::int64_t in_features, std::int64_t out_features, const MatmulOptions& options = {});

// How a product is spread over the threads (docs/performance.md compares them on a training step's shapes):
//   kBlasThreads  one BLAS call; OpenBLAS splits it over the OpenMP team itself, statically.
//   kChunked      the larger output dimension cut into 16 chunks that the team takes dynamically, one
//                 single-threaded BLAS call each: a thread that the OS deschedules on a busy machine holds up
//                 only its chunk instead of the whole product, and the result does not depend on the thread
//                 count; but each chunk packs the shared operand again. (K sums are never split; results may
//                 differ from kBlasThreads in the last bits, where the BLAS kernels handle edges differently.)
//   kAuto         kChunked when the output is large against K (max(M, N) >= 2 K: the activation products of a
//                 layer, where chunking measured faster), kBlasThreads otherwise (the weight gradients, whose
//                 K = tokens makes repacking per chunk costly).
// Default: ZEBRA_GEMM=blas|chunked|auto from the environment, else kAuto.
enum class GemmBackend { kBlasThreads, kChunked, kAuto };
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend backend);
const char* to_string(GemmBackend backend);

// General row-major C[M,N] = alpha * op(A) . op(B) + beta * C through the BLAS (and gemm_backend()).
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// x rounded to the nearest bfloat16 (ties to even), as a float: the top 16 bits of the result are the bf16
// value and the low 16 are zero. NaN stays NaN; values beyond the bf16 range round to infinity.
float round_to_bf16(float x);
// dst[i] = round_to_bf16(src[i]) for i < n (dst may equal src).
void round_to_bf16(float* dst, const float* src, std::int64_t n);

// Largest scratch one BF16 matmul call of these sizes allocates (rounded copies of the weight and of a chunk
// of rows), for memory planning.
std::int64_t bf16_scratch_bytes(std::int64_t n, std::int64_t in_features, std::int64_t out_features);

}  // namespace zebra
