#include "zebra/ops/weight_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/simd/weight_kernels.hpp"
#include "zebra/ops/weight_matmul.hpp"

namespace zebra {

namespace {

const std::uint16_t* row16(const WeightMatrix& w, std::int64_t r) {
  return static_cast<const std::uint16_t*>(w.row(r));
}

template <DType D>
void half_rows_to_f32(float* dst, const WeightMatrix& w, std::int64_t r0, std::int64_t rows, SimdPath path) {
  const simd::HalfKernels& k = simd::half_kernels(D, path);
  for (std::int64_t r = 0; r < rows; ++r) k.to_f32(dst + r * w.cols, row16(w, r0 + r), w.cols);
}

template <DType D>
void half_gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const WeightMatrix& w, std::int64_t r0,
               std::int64_t rows, SimdPath path) {
  const auto* inp = static_cast<const float*>(act);
  const simd::HalfKernels& k = simd::half_kernels(D, path);
  const auto stride = static_cast<std::int64_t>(w.row_bytes / sizeof(std::uint16_t));
  // Blocks of up to kGemvBlockRows activation rows; the weight rows stay in L1/L2 between the blocks.
  for (std::int64_t i0 = 0; i0 < n; i0 += simd::kGemvBlockRows) {
    const std::int64_t nb = std::min(simd::kGemvBlockRows, n - i0);
    k.gemv(out + i0 * ldo, ldo, inp + i0 * w.cols, nb, row16(w, r0), stride, rows, w.cols);
  }
}

// Block-quantized weights through the scalar reference of ops/quant/: each row dequantised on the fly (the
// weights stay blocks in memory). Correct for every block type; SIMD dot-product kernels replace these entries
// type by type, tested against them.
void quant_rows_to_f32(float* dst, const WeightMatrix& w, std::int64_t r0, std::int64_t rows, SimdPath) {
  for (std::int64_t r = 0; r < rows; ++r) quant::dequantize_row(w.dtype, w.row(r0 + r), dst + r * w.cols, w.cols);
}

void quant_gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const WeightMatrix& w, std::int64_t r0,
                std::int64_t rows, SimdPath) {
  const auto* inp = static_cast<const float*>(act);
  thread_local std::vector<float> row;
  row.resize(static_cast<std::size_t>(w.cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(w.dtype, w.row(r0 + r), row.data(), w.cols);
    for (std::int64_t i = 0; i < n; ++i) {
      const float* x = inp + i * w.cols;
      float acc = 0.0f;
      for (std::int64_t c = 0; c < w.cols; ++c) acc += x[c] * row[static_cast<std::size_t>(c)];
      out[i * ldo + r] = acc;
    }
  }
}

constexpr WeightTypeKernels kQuantReference{&quant_rows_to_f32, &quant_gemv, nullptr, nullptr};

constexpr WeightTypeKernels kBf16{&half_rows_to_f32<DType::kBF16>, &half_gemv<DType::kBF16>, nullptr, nullptr};
constexpr WeightTypeKernels kF16{&half_rows_to_f32<DType::kF16>, &half_gemv<DType::kF16>, nullptr, nullptr};

}  // namespace

const WeightTypeKernels* weight_type_kernels(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return &kBf16;
    case DType::kF16: return &kF16;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return &kQuantReference;
    default: return nullptr;
  }
}

}  // namespace zebra
