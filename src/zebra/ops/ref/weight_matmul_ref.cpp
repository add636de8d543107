#include "zebra/ops/ref/weight_matmul_ref.hpp"

#include <cstring>
#include <vector>

#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/error.hpp"

namespace zebra::ref {

void weight_row(double* dst, const WeightMatrix& w, std::int64_t r) {
  const void* row = w.row(r);
  if (dtype_is_quantized(w.dtype)) {
    std::vector<float> f(static_cast<std::size_t>(w.cols));
    quant::dequantize_row(w.dtype, row, f.data(), w.cols);
    for (std::int64_t k = 0; k < w.cols; ++k) dst[k] = f[static_cast<std::size_t>(k)];
    return;
  }
  for (std::int64_t k = 0; k < w.cols; ++k) {
    switch (w.dtype) {
      case DType::kF32: {
        float x;
        std::memcpy(&x, static_cast<const unsigned char*>(row) + k * 4, 4);
        dst[k] = x;
        break;
      }
      case DType::kF64: std::memcpy(dst + k, static_cast<const unsigned char*>(row) + k * 8, 8); break;
      case DType::kBF16:
      case DType::kF16: {
        std::uint16_t h;
        std::memcpy(&h, static_cast<const unsigned char*>(row) + k * 2, 2);
        dst[k] = w.dtype == DType::kBF16 ? bf16_to_float(h) : f16_to_float(h);
        break;
      }
      default: fail("ref::weight_row: no reference for dtype ", to_string(w.dtype));
    }
  }
}

void weight_matmul(double* out, const double* inp, std::int64_t n, const WeightMatrix& w) {
  std::vector<double> row(static_cast<std::size_t>(w.cols));
  for (std::int64_t r = 0; r < w.rows; ++r) {
    weight_row(row.data(), w, r);
    for (std::int64_t i = 0; i < n; ++i) {
      double acc = 0.0;
      for (std::int64_t k = 0; k < w.cols; ++k) acc += inp[i * w.cols + k] * row[static_cast<std::size_t>(k)];
      out[i * w.rows + r] = acc;
    }
  }
}

}  // namespace zebra::ref
