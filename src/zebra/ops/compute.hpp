// How an op call computes: thread count, GEMM spreading, SIMD path, attention kernel, BF16 products. A plain
// value passed to every op as a trailing defaulted argument, so that two sessions (or a test and the code it
// tests) can run different choices at once: nothing of it is process-global state.
//
// A default-constructed ComputeOptions takes its gemm and simd members from the environment (ZEBRA_GEMM,
// ZEBRA_SIMD: read once, on first use, then fixed for the process), else kAuto and the widest path the CPU
// runs.
//
// Threads. An op runs its OpenMP loops and its BLAS calls with `threads` threads (0: the calling thread's
// OpenMP default, omp_get_max_threads()). It does so by setting the calling thread's nthreads-var ICV for the
// call (ThreadScope below; omp_set_num_threads changes only the calling thread's data environment, so other
// threads calling ops at the same time are unaffected) and restoring it afterwards. OpenBLAS in its OpenMP
// build follows that ICV: every threaded interface asks num_cpu_avail() (common_thread.h), which returns 1
// inside an OpenMP parallel region (omp_in_parallel()) and otherwise re-reads omp_get_max_threads() of the
// caller on each call and resizes its team to it (goto_set_num_threads). Checked against the installed 0.3.21
// (Debian's libopenblas0-openmp) under gdb: with the caller's ICV at 1 a 512^3 sgemm never enters exec_blas
// (one thread), and back at 2 it calls exec_blas with 2 threads again.
#pragma once

#include "zebra/ops/cpu_features.hpp"

namespace zebra {

// How a product is spread over the threads (docs/performance.md compares them on a training step's shapes):
//   kBlasThreads  one BLAS call; OpenBLAS splits it over the OpenMP team itself, statically.
//   kChunked      the larger output dimension cut into 16 chunks that the team takes dynamically, one
//                 single-threaded BLAS call each: a thread that the OS deschedules on a busy machine holds up
//                 only its chunk instead of the whole product, and the result does not depend on the thread
//                 count; but each chunk packs the shared operand again. (K sums are never split; results may
//                 differ from kBlasThreads in the last bits, where the BLAS kernels handle edges
//                 differently.)
//   kAuto         kChunked when the output is large against K (max(M, N) >= 2 K: the activation products of a
//                 layer, where chunking measured faster), kBlasThreads otherwise (the weight gradients, whose
//                 K = tokens makes repacking per chunk costly).
enum class GemmBackend { kBlasThreads, kChunked, kAuto };
const char* to_string(GemmBackend backend);
// ZEBRA_GEMM=blas|chunked|auto from the environment (read once), else kAuto; throws for any other value.
GemmBackend default_gemm_backend();

// Attention kernel variants. kDefault follows ComputeOptions::simd; the others are for tests and benchmarks.
// kAvx512OnAvx2 runs the AVX-512 kernels' exact tiling and blocking (16 lanes, 12 x 2 vectors) with AVX2
// instructions, so that machines without AVX-512 can test that logic. Double precision always uses the scalar
// kernels.
enum class AttentionKernel { kDefault, kScalar, kAvx2, kAvx512, kAvx512OnAvx2 };
const char* to_string(AttentionKernel kernel);

struct ComputeOptions {
  // BF16 products (matmul_forward / matmul_backward / weight_matmul on F32 weights): both inputs of every
  // product rounded to bfloat16 (round to nearest even), products accumulated in fp32, as a BF16 GEMM with
  // fp32 accumulation computes them. float only (double ignores it). First member, so that the positional
  // MatmulOptions{bf16} of older call sites keeps its meaning.
  bool bf16 = false;
  // OpenMP threads for the call (and the BLAS calls inside it); 0: omp_get_max_threads() of the caller.
  int threads = 0;
  GemmBackend gemm = default_gemm_backend();
  // SIMD path of the float kernels (elementwise ops, attention with kDefault, 16-bit weight products).
  SimdPath simd = default_simd_path();
  AttentionKernel attention = AttentionKernel::kDefault;
};

// The old name of the product options: the same struct.
using MatmulOptions = ComputeOptions;

// The calling thread's OpenMP thread count set to options.threads for the lifetime of the scope (nothing when
// it is 0 or already that count), restored at its end. Every op that threads opens one (see the header
// comment).
class ThreadScope {
 public:
  explicit ThreadScope(const ComputeOptions& options);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_ = 0;  // 0: nothing to restore
};

}  // namespace zebra
