#include "zebra/ops/linear.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Decoding multiplies single rows: OpenBLAS's GEMM packs the whole weight matrix on every call even for one
// row (measured: 60% of a decode step in sgemm_incopy), so a few rows go to GEMV, which streams the weight once
// per row without packing. More rows: the GEMM.
constexpr std::int64_t kGemvMaxRows = 2;
// 16-bit weights are widened to fp32 in tiles of this many weight rows before the GEMM (bounded scratch).
constexpr std::int64_t kConvertTileRows = 256;

constexpr DType dense_dtype_of(bool is_float) { return is_float ? DType::kF32 : DType::kF64; }

// dst[n] = the n elements of a row of dtype d (F32, BF16, F16).
void widen_row(DType d, const void* src, float* dst, std::int64_t n) {
  switch (d) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(h[i]);
      return;
    }
    case DType::kF16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(h[i]);
      return;
    }
    default:
      fail("linear: no kernel for weights of dtype ", to_string(d));
  }
}

template <typename T>
void dense_forward(T* out, std::int64_t ldo, const T* inp, const T* w, std::int64_t ldw, std::int64_t n,
                   std::int64_t rows, std::int64_t cols, const MatmulOptions& options) {
  if (n > kGemvMaxRows || options.bf16) {
    if (ldo == rows && ldw == cols) {
      matmul_forward(out, inp, w, n, cols, rows, options);
    } else {
      gemm<T>(false, true, n, rows, cols, T(1), inp, cols, w, ldw, T(0), out, ldo);
    }
    return;
  }
  for (std::int64_t r = 0; r < n; ++r) {
    const auto m = static_cast<blasint>(rows), k = static_cast<blasint>(cols), lw = static_cast<blasint>(ldw);
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0f, w, lw, inp + r * cols, 1, 0.0f, out + r * ldo, 1);
    } else {
      cblas_dgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0, w, lw, inp + r * cols, 1, 0.0, out + r * ldo, 1);
    }
  }
}

}  // namespace

template <typename T>
const T* dense_data(const WeightMatrix& w) {
  constexpr DType want = dense_dtype_of(std::is_same_v<T, float>);
  ZEBRA_CHECK(w.dtype == want && w.row_bytes == static_cast<std::size_t>(w.cols) * sizeof(T), "weights of dtype ",
              to_string(w.dtype), " where dense ", to_string(want), " rows are needed (training needs fp32 weights)");
  return static_cast<const T*>(w.data);
}

template <typename T>
void linear_forward(T* out, std::int64_t ldo, const T* inp, const WeightMatrix& w, std::int64_t n,
                    const MatmulOptions& options) {
  if (n == 0 || w.rows == 0) return;
  constexpr DType dense = dense_dtype_of(std::is_same_v<T, float>);
  if (w.dtype == dense) {
    ZEBRA_CHECK(w.row_bytes % sizeof(T) == 0, "linear: row stride not a multiple of the element size");
    dense_forward(out, ldo, inp, static_cast<const T*>(w.data), static_cast<std::int64_t>(w.row_bytes / sizeof(T)),
                  n, w.rows, w.cols, options);
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    fail("linear: double products need F64 weights, got ", to_string(w.dtype));
  } else {
    // Widen a tile of weight rows, multiply, next tile: the scratch is bounded by the tile.
    thread_local AlignedBuffer<float> tile;
    const std::int64_t tile_rows = std::min(kConvertTileRows, w.rows);
    if (tile.size() < static_cast<std::size_t>(tile_rows * w.cols)) {
      tile.resize(static_cast<std::size_t>(tile_rows * w.cols));
    }
    for (std::int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
      const std::int64_t rows = std::min(tile_rows, w.rows - r0);
      for (std::int64_t r = 0; r < rows; ++r) widen_row(w.dtype, w.row(r0 + r), tile.data() + r * w.cols, w.cols);
      dense_forward(out + r0, ldo, inp, tile.data(), w.cols, n, rows, w.cols, options);
    }
  }
}

template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const WeightMatrix& table, std::int64_t n) {
  const std::int64_t d = table.cols;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = tokens[i];
    ZEBRA_CHECK(t >= 0 && t < table.rows, "token id ", t, " at index ", i, " is outside the vocabulary [0, ",
                table.rows, ")");
    if constexpr (std::is_same_v<T, float>) {
      widen_row(table.dtype, table.row(t), out + i * d, d);
    } else {
      ZEBRA_CHECK(table.dtype == DType::kF64, "embedding: double lookups need an F64 table, got ",
                  to_string(table.dtype));
      std::memcpy(out + i * d, table.row(t), static_cast<std::size_t>(d) * sizeof(double));
    }
  }
}

template void linear_forward<float>(float*, std::int64_t, const float*, const WeightMatrix&, std::int64_t,
                                    const MatmulOptions&);
template void linear_forward<double>(double*, std::int64_t, const double*, const WeightMatrix&, std::int64_t,
                                     const MatmulOptions&);
template void embedding_forward<float>(float*, const std::int32_t*, const WeightMatrix&, std::int64_t);
template void embedding_forward<double>(double*, const std::int32_t*, const WeightMatrix&, std::int64_t);
template const float* dense_data<float>(const WeightMatrix&);
template const double* dense_data<double>(const WeightMatrix&);

}  // namespace zebra
