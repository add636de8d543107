#include "zebra/ops/matmul.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>

#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// Rows per chunk of the BF16 path: large enough that each chunk is an efficient GEMM (the smallest product of a
// training step has K = d_model), small enough that the rounded copy stays a few MiB.
constexpr std::int64_t kBf16ChunkRows = 1024;

// Below this many elements a loop runs on one thread (waking the team costs more).
constexpr std::int64_t kParallelMinElements = 1 << 16;

// Scratch of the BF16 path, reused across calls from the same thread (the model calls from one thread).
struct Bf16Scratch {
  AlignedBuffer<float> weight, rows_a, rows_b;
  static float* ensure(AlignedBuffer<float>& buf, std::int64_t n) {
    if (buf.size() < static_cast<std::size_t>(n)) buf.resize(static_cast<std::size_t>(n));
    return buf.data();
  }
};
thread_local Bf16Scratch g_scratch;

}  // namespace

float round_to_bf16(float x) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::bit_cast<float>(u | 0x00400000u);  // NaN: keep it (quiet)
  u += 0x7fffu + ((u >> 16) & 1u);  // ties to even; overflow carries into the exponent (-> inf), as it should
  return std::bit_cast<float>(u & 0xffff0000u);
}

void round_to_bf16(float* dst, const float* src, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, src + i, sizeof u);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const std::uint32_t r = nan ? (u | 0x00400000u) : rounded;
    std::memcpy(dst + i, &r, sizeof r);
  }
}

std::int64_t bf16_scratch_bytes(std::int64_t n, std::int64_t in_features, std::int64_t out_features) {
  const std::int64_t rows = std::min(n, kBf16ChunkRows);
  return static_cast<std::int64_t>(sizeof(float)) *
         (out_features * in_features + rows * std::max(in_features, out_features) + rows * in_features);
}

namespace {

void blas_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tr(trans_a), tr(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void blas_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
               const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
               std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tr(trans_a), tr(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

// Products below this many multiply-adds run on the calling thread alone: about 30 us of one core, less than
// what waking the team and the barrier after it cost on a busy machine (OpenBLAS's own cut is 2^18, far below:
// a small model's layers then paid a team wake-up per product).
constexpr double kSingleThreadMaxWork = 1 << 21;
// Products below this many multiply-adds are not chunked: chunks of them would be too small to run at full speed.
constexpr double kChunkMinWork = 1 << 24;

// Runs f with this thread's OpenMP team size set to one, which OpenBLAS (OpenMP build) reads as its thread count.
template <typename F>
void on_one_thread(F&& f) {
  const int saved = omp_get_max_threads();
  if (saved == 1) {
    f();
    return;
  }
  omp_set_num_threads(1);
  f();
  omp_set_num_threads(saved);
}
// Forward products of at most this many rows go to GEMV instead of the GEMM (matmul_forward_strided).
constexpr std::int64_t kDenseGemvMaxRows = 2;
// Chunks per product: enough that a descheduled thread's share can be taken over (8 per core on the 2-core
// target). A fixed count, not one per thread, so that the results do not depend on the thread count.
constexpr std::int64_t kChunks = 16;
// Smallest chunk edge: the BLAS micro-kernels work on panels of 16-24 rows; below ~64 their packing overhead
// shows.
constexpr std::int64_t kMinChunk = 64;

// C = alpha op(A) op(B) + beta C with the larger of M, N cut into chunks taken dynamically by the OpenMP team;
// inside the parallel region each BLAS call runs single-threaded (OpenBLAS's OpenMP build checks
// omp_in_parallel()). The chunks depend only on the shape, so the result is the same for any thread count (it
// may differ in the last bits from one whole-product call, whose kernels split the edges differently).
template <typename T>
void chunked_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                  std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const bool split_m = m >= n;
  const std::int64_t dim = split_m ? m : n;
  std::int64_t chunk = (dim + kChunks - 1) / kChunks;
  chunk = std::max(kMinChunk, (chunk + 15) / 16 * 16);
  const std::int64_t n_chunks = (dim + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t ci = 0; ci < n_chunks; ++ci) {
    const std::int64_t o = ci * chunk, len = std::min(chunk, dim - o);
    if (split_m) {
      // Rows [o, o + len) of C and of op(A): A is [M, K] (lda per row) or, transposed, [K, M] (columns).
      blas_gemm(trans_a, trans_b, len, n, k, alpha, trans_a ? a + o : a + o * lda, lda, b, ldb, beta, c + o * ldc, ldc);
    } else {
      // Columns [o, o + len) of C and of op(B): B is [K, N] (columns) or, transposed, [N, K] (rows).
      blas_gemm(trans_a, trans_b, m, len, k, alpha, a, lda, trans_b ? b + o * ldb : b + o, ldb, beta, c + o, ldc);
    }
  }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const ComputeOptions& options) {
  const ThreadScope threads(options);
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const GemmBackend be = options.gemm;
  const bool chunk = be == GemmBackend::kChunked || (be == GemmBackend::kAuto && std::max(m, n) >= 2 * k);
  if (work < kSingleThreadMaxWork && !omp_in_parallel()) {
    on_one_thread([&] { blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
  } else if (chunk && work >= kChunkMinWork && !omp_in_parallel()) {
    chunked_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t, const ComputeOptions&);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double, const double*, std::int64_t,
                           const double*, std::int64_t, double, double*, std::int64_t, const ComputeOptions&);

namespace {

// BF16 products: the inputs rounded to bf16 (held in fp32, exactly representable), multiplied by the fp32
// GEMM. A product of two bf16 values has at most 16 significant bits, so every product is exact in fp32 and the
// result differs from a native BF16 GEMM with fp32 accumulation only in the order of the sums.
// out [N, ldo], weight rows ldw apart (the rounded copy is contiguous).
void forward_bf16(float* out, std::int64_t ldo, const float* inp, const float* weight, std::int64_t ldw, std::int64_t n,
                  std::int64_t in, std::int64_t outf, const ComputeOptions& options) {
  float* w = Bf16Scratch::ensure(g_scratch.weight, outf * in);
  if (ldw == in) {
    round_to_bf16(w, weight, outf * in);
  } else {
    for (std::int64_t r = 0; r < outf; ++r) round_to_bf16(w + r * in, weight + r * ldw, in);
  }
  float* a = Bf16Scratch::ensure(g_scratch.rows_a, std::min(n, kBf16ChunkRows) * in);
  for (std::int64_t r0 = 0; r0 < n; r0 += kBf16ChunkRows) {
    const std::int64_t rows = std::min(kBf16ChunkRows, n - r0);
    round_to_bf16(a, inp + r0 * in, rows * in);
    gemm<float>(false, true, rows, outf, in, 1.0f, a, in, w, in, 0.0f, out + r0 * ldo, ldo, options);
  }
}

void backward_bf16(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                   std::int64_t n, std::int64_t in, std::int64_t outf, const ComputeOptions& options) {
  const std::int64_t chunk = std::min(n, kBf16ChunkRows);
  float* a = Bf16Scratch::ensure(g_scratch.rows_a, chunk * outf);                               // rows of dout
  float* b = dweight != nullptr ? Bf16Scratch::ensure(g_scratch.rows_b, chunk * in) : nullptr;  // rows of inp
  float* w = dinp != nullptr ? Bf16Scratch::ensure(g_scratch.weight, outf * in) : nullptr;
  if (dinp != nullptr) round_to_bf16(w, weight, outf * in);
  for (std::int64_t r0 = 0; r0 < n; r0 += kBf16ChunkRows) {
    const std::int64_t rows = std::min(kBf16ChunkRows, n - r0);
    round_to_bf16(a, dout + r0 * outf, rows * outf);
    if (dinp != nullptr) {
      // dinp[rows, IC] = dout[rows, OC] . weight[OC, IC]
      gemm<float>(false, false, rows, in, outf, 1.0f, a, outf, w, in, 0.0f, dinp + r0 * in, in, options);
    }
    if (dweight != nullptr) {
      // dweight[OC, IC] += dout^T[OC, rows] . inp[rows, IC], chunk by chunk in fp32
      round_to_bf16(b, inp + r0 * in, rows * in);
      gemm<float>(true, false, outf, in, rows, 1.0f, a, outf, b, in, 1.0f, dweight, in, options);
    }
  }
}

}  // namespace

template <typename T>
void matmul_forward_strided(T* out, std::int64_t ldo, const T* inp, const T* weight, std::int64_t ldw, std::int64_t n,
                            std::int64_t in_features, std::int64_t out_features, const ComputeOptions& options) {
  ZEBRA_CHECK(ldo >= out_features && ldw >= in_features, "matmul_forward_strided: need ldo >= out_features and ",
              "ldw >= in_features, got ldo=", ldo, " out_features=", out_features, " ldw=", ldw,
              " in_features=", in_features);
  if (n == 0 || out_features == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (options.bf16) {
      const ThreadScope threads(options);  // also for the rounding loops
      forward_bf16(out, ldo, inp, weight, ldw, n, in_features, out_features, options);
      return;
    }
  }
  if (n <= kDenseGemvMaxRows) {
    // Decoding multiplies single rows: OpenBLAS 0.3.21's GEMM packs the whole weight matrix on every call even for
    // one row (measured: 60% of a decode step in sgemm_incopy, and 3.7x slower decode of an 88M model), so a few
    // rows go to GEMV, which streams the weight once per row without packing.
    const ThreadScope threads(options);
    const auto m = static_cast<blasint>(out_features), k = static_cast<blasint>(in_features);
    const auto lw = static_cast<blasint>(ldw);
    for (std::int64_t r = 0; r < n; ++r) {
      if constexpr (std::is_same_v<T, float>) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0f, weight, lw, inp + r * in_features, 1, 0.0f, out + r * ldo,
                    1);
      } else {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0, weight, lw, inp + r * in_features, 1, 0.0, out + r * ldo,
                    1);
      }
    }
    return;
  }
  gemm<T>(false, true, n, out_features, in_features, T(1), inp, in_features, weight, ldw, T(0), out, ldo, options);
}

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features, const ComputeOptions& options) {
  matmul_forward_strided(out, out_features, inp, weight, in_features, n, in_features, out_features, options);
}

template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, std::int64_t n,
                     std::int64_t in_features, std::int64_t out_features, const ComputeOptions& options) {
  if (n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (options.bf16) {
      const ThreadScope threads(options);  // also for the rounding loops
      backward_bf16(dinp, dweight, dout, inp, weight, n, in_features, out_features, options);
      return;
    }
  }
  if (dinp != nullptr) {
    // dinp[N, IC] = dout[N, OC] . weight[OC, IC]
    gemm<T>(false, false, n, in_features, out_features, T(1), dout, out_features, weight, in_features, T(0), dinp,
            in_features, options);
  }
  if (dweight != nullptr) {
    // dweight[OC, IC] += dout^T[OC, N] . inp[N, IC]
    gemm<T>(true, false, out_features, in_features, n, T(1), dout, out_features, inp, in_features, T(1), dweight,
            in_features, options);
  }
}

template void matmul_forward<float>(float*, const float*, const float*, std::int64_t, std::int64_t, std::int64_t,
                                    const ComputeOptions&);
template void matmul_forward<double>(double*, const double*, const double*, std::int64_t, std::int64_t, std::int64_t,
                                     const ComputeOptions&);
template void matmul_forward_strided<float>(float*, std::int64_t, const float*, const float*, std::int64_t,
                                            std::int64_t, std::int64_t, std::int64_t, const ComputeOptions&);
template void matmul_forward_strided<double>(double*, std::int64_t, const double*, const double*, std::int64_t,
                                             std::int64_t, std::int64_t, std::int64_t, const ComputeOptions&);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*, std::int64_t,
                                     std::int64_t, std::int64_t, const ComputeOptions&);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*, std::int64_t,
                                      std::int64_t, std::int64_t, const ComputeOptions&);

}  // namespace zebra
