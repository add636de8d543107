// Drivers of weight_matmul: checks, the F32/F64 BLAS route, and for the other dtypes (weight_kernels.hpp) the
// threading of the matrix-vector kernels (small N) or of the tile conversion + sgemm (large N).
#include "zebra/ops/weight_matmul.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "zebra/ops/matmul.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/weight_kernels.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Weight rows per tile of the tiled path: wide enough that each sgemm runs at speed (its N = the tile), and
// at most kTileMaxElements fp32 values (1 MiB) per thread, with at least kTileMinRows rows for very wide
// matrices.
constexpr std::int64_t kTileRows = 64;
constexpr std::int64_t kTileMinRows = 16;
constexpr std::int64_t kTileMaxElements = std::int64_t{1} << 18;
// Weight rows per task of the matrix-vector path (one kernel call). A static schedule gives each thread one
// contiguous run of rows, which the kernels' prefetching streams through (measured 4% faster per decode step
// than a dynamic schedule of 2 tasks, 3 runs each, zebra generate --profile on SmolLM2).
constexpr std::int64_t kGemvTaskRows = 16;

std::int64_t tile_rows(std::int64_t cols) {
  return std::max(kTileMinRows, std::min(kTileRows, kTileMaxElements / std::max<std::int64_t>(cols, 1)));
}

// The per-thread fp32 tile (only grows, up to tile_rows(cols) * cols floats).
float* tile_scratch(std::int64_t elements) {
  thread_local AlignedBuffer<float> buf;
  if (buf.size() < static_cast<std::size_t>(elements)) buf.resize(static_cast<std::size_t>(elements));
  return buf.data();
}

void check_args(const char* what, std::int64_t ldo, std::int64_t n, const WeightMatrix& w) {
  ZEBRA_CHECK(n >= 0 && w.rows >= 0 && w.cols >= 0, what, ": need n, rows, cols >= 0, got n=", n, " rows=", w.rows,
              " cols=", w.cols);
  ZEBRA_CHECK(ldo >= w.rows, what, ": output row stride ", ldo, " is less than the weight's rows ", w.rows);
  if (w.rows == 0 || w.cols == 0) return;
  ZEBRA_CHECK(w.data != nullptr, what, ": ", to_string(w.dtype), " weight [", w.rows, ", ", w.cols, "] has no data");
  const std::size_t need = dtype_row_bytes(w.dtype, w.cols);
  ZEBRA_CHECK(w.row_bytes >= need, what, ": ", to_string(w.dtype), " weight rows of ", w.cols, " need ", need,
              " bytes, but the row stride is ", w.row_bytes);
  if (!dtype_is_quantized(w.dtype)) {
    const std::size_t es = dtype_size(w.dtype);
    ZEBRA_CHECK(w.row_bytes % es == 0 && reinterpret_cast<std::uintptr_t>(w.data) % es == 0, what, ": ",
                to_string(w.dtype), " weight data and row stride (", w.row_bytes, ") must be multiples of ", es,
                " bytes");
  }
}

[[noreturn]] void unsupported(const WeightMatrix& w, const char* activations) {
  fail("weight_matmul: no kernel for ", to_string(w.dtype), " weights with ", activations,
       " activations (float: F32, BF16, F16; double: F64)");
}

void kernel_product(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const WeightMatrix& w,
                    const WeightTypeKernels& k, const ComputeOptions& options) {
  check_simd_path(options.simd, "weight_matmul");
  const ThreadScope threads(options);
  const bool parallel = worth_parallel(w.rows * w.cols);
  if (n <= kGemvMaxRows) {
    const void* act = inp;
    if (k.prepare_activations != nullptr) {
      thread_local AlignedBuffer<unsigned char> prepared;
      const std::size_t bytes = k.prepared_bytes(n, w.cols);
      if (prepared.size() < bytes) prepared.resize(bytes);
      k.prepare_activations(prepared.data(), inp, n, w.cols, options.simd);
      act = prepared.data();
    }
    const std::int64_t tasks = (w.rows + kGemvTaskRows - 1) / kGemvTaskRows;
#pragma omp parallel for schedule(static) if (parallel && tasks > 1)
    for (std::int64_t t = 0; t < tasks; ++t) {
      const std::int64_t r0 = t * kGemvTaskRows, rows = std::min(kGemvTaskRows, w.rows - r0);
      k.gemv(out + r0, ldo, act, n, w, r0, rows, options.simd);
    }
    return;
  }
  // Tiles fixed by the shape (not by the thread count), so the result is the same for any number of threads.
  const std::int64_t tr = tile_rows(w.cols);
  const std::int64_t tiles = (w.rows + tr - 1) / tr;
#pragma omp parallel if (parallel && tiles > 1)
  {
    float* tile = tile_scratch(tr * w.cols);
#pragma omp for schedule(dynamic)
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t r0 = t * tr, rows = std::min(tr, w.rows - r0);
      k.rows_to_f32(tile, w, r0, rows, options.simd);
      // out[:, r0 : r0 + rows] = inp [N, cols] . tile^T [cols, rows]; inside the team the BLAS runs on this
      // thread alone (OpenBLAS checks omp_in_parallel()), as does a team of one.
      gemm<float>(false, true, n, rows, w.cols, 1.0f, inp, w.cols, tile, w.cols, 0.0f, out + r0, ldo, options);
    }
  }
}

}  // namespace

void weight_matmul(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const WeightMatrix& w,
                   const ComputeOptions& options) {
  check_args("weight_matmul", ldo, n, w);
  if (n == 0 || w.rows == 0) return;
  if (w.cols == 0) {  // empty sums (and no BLAS call with a zero leading dimension)
    for (std::int64_t i = 0; i < n; ++i) std::fill(out + i * ldo, out + i * ldo + w.rows, 0.0f);
    return;
  }
  if (w.dtype == DType::kF32) {
    matmul_forward_strided(out, ldo, inp, static_cast<const float*>(w.data),
                           static_cast<std::int64_t>(w.row_bytes / sizeof(float)), n, w.cols, w.rows, options);
    return;
  }
  const WeightTypeKernels* k = weight_type_kernels(w.dtype);
  if (k == nullptr) unsupported(w, "float");
  kernel_product(out, ldo, inp, n, w, *k, options);
}

void weight_matmul(double* out, std::int64_t ldo, const double* inp, std::int64_t n, const WeightMatrix& w,
                   const ComputeOptions& options) {
  check_args("weight_matmul", ldo, n, w);
  if (w.dtype != DType::kF64) unsupported(w, "double");
  if (n == 0 || w.rows == 0) return;
  if (w.cols == 0) {
    for (std::int64_t i = 0; i < n; ++i) std::fill(out + i * ldo, out + i * ldo + w.rows, 0.0);
    return;
  }
  matmul_forward_strided(out, ldo, inp, static_cast<const double*>(w.data),
                         static_cast<std::int64_t>(w.row_bytes / sizeof(double)), n, w.cols, w.rows, options);
}

std::int64_t weight_matmul_scratch_bytes(const WeightMatrix& w, std::int64_t n, const ComputeOptions& options) {
  if (w.dtype == DType::kF32) return options.bf16 ? bf16_scratch_bytes(n, w.cols, w.rows) : 0;
  if (w.dtype == DType::kF64) return 0;
  if (n <= kGemvMaxRows) {
    const WeightTypeKernels* k = weight_type_kernels(w.dtype);
    return k != nullptr && k->prepared_bytes != nullptr ? static_cast<std::int64_t>(k->prepared_bytes(n, w.cols)) : 0;
  }
  return tile_rows(w.cols) * w.cols * static_cast<std::int64_t>(sizeof(float));
}

}  // namespace zebra
