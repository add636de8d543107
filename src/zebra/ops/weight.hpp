// A weight matrix as the matrix products see it: row-major [rows, cols] of any DType (util/dtype.hpp).
// rows are output features, cols input features (nn.Linear layout). A block-quantized matrix stores each
// row as dtype_row_bytes(dtype, cols) bytes of blocks along cols; row_bytes is the stride between rows
// (>= that, so that a view can select rows of a larger matrix).
//
// The storage is borrowed: a WeightMatrix never owns memory (model/ keeps the buffers or the mapped file).
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/util/dtype.hpp"

namespace zebra {

struct WeightMatrix;
[[noreturn]] void dense_data_error(const WeightMatrix& w, DType want);

struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::size_t row_bytes = 0;

  // A dense view of T (float: F32, double: F64) with contiguous rows.
  template <typename T>
  static WeightMatrix dense(const T* p, std::int64_t rows, std::int64_t cols);
  // Rows [r0, r0 + n) of this matrix.
  WeightMatrix row_slice(std::int64_t r0, std::int64_t n) const;
  // The first element of row r.
  const void* row(std::int64_t r) const {
    return static_cast<const unsigned char*>(data) + static_cast<std::size_t>(r) * row_bytes;
  }
};

template <typename T>
WeightMatrix WeightMatrix::dense(const T* p, std::int64_t rows, std::int64_t cols) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "dense weights are float or double");
  return WeightMatrix{sizeof(T) == 4 ? DType::kF32 : DType::kF64, p, rows, cols,
                      static_cast<std::size_t>(cols) * sizeof(T)};
}

// The dense T storage of w (backward needs dense weights: float F32, double F64, contiguous rows); throws
// naming the dtype otherwise.
template <typename T>
const T* dense_data(const WeightMatrix& w) {
  constexpr DType want = sizeof(T) == 4 ? DType::kF32 : DType::kF64;
  if (w.dtype != want || w.row_bytes != static_cast<std::size_t>(w.cols) * sizeof(T)) {
    dense_data_error(w, want);
  }
  return static_cast<const T*>(w.data);
}

inline WeightMatrix WeightMatrix::row_slice(std::int64_t r0, std::int64_t n) const {
  return WeightMatrix{dtype, row(r0), n, cols, row_bytes};
}

}  // namespace zebra
