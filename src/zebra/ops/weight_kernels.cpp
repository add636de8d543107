#include "zebra/ops/weight_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "zebra/util/aligned_buffer.hpp"

#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/simd/quant_kernels.hpp"
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

// Block-quantized weights stay blocks in memory. Rows to fp32 (the tiles of a prefill product): the SIMD
// dequantisation of simd/quant_kernels.hpp for the 32-value formats, the scalar reference of ops/quant/ for
// the K-quants.
void quant_rows_to_f32(float* dst, const WeightMatrix& w, std::int64_t r0, std::int64_t rows, SimdPath path) {
  if (simd::has_quant_kernels(w.dtype)) {
    const simd::QuantKernels& k = simd::quant_kernels(w.dtype, path);
    for (std::int64_t r = 0; r < rows; ++r) k.to_f32(dst + r * w.cols, w.row(r0 + r), w.cols);
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r) quant::dequantize_row(w.dtype, w.row(r0 + r), dst + r * w.cols, w.cols);
}

// The 32-value formats at decode: activations quantized to 8-bit blocks once per call (prepare), then integer
// block dot products (simd/quant_kernels.hpp).
std::size_t q8_act_bytes(std::int64_t n, std::int64_t cols) {
  return static_cast<std::size_t>(n) * simd::act_row_bytes(cols);
}

void q8_prepare(void* prepared, const float* inp, std::int64_t n, std::int64_t cols, SimdPath path) {
  // Any 32-value format's table holds the same activation quantizer of its path.
  const simd::QuantKernels& k = simd::quant_kernels(DType::kQ8_0, path);
  auto* rows = static_cast<unsigned char*>(prepared);
  for (std::int64_t i = 0; i < n; ++i)
    k.quantize_activations(rows + i * simd::act_row_bytes(cols), inp + i * cols, cols);
}

void q8_gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const WeightMatrix& w, std::int64_t r0,
             std::int64_t rows, SimdPath path) {
  const simd::QuantKernels& k = simd::quant_kernels(w.dtype, path);
  const auto* rows_q = static_cast<const unsigned char*>(act);
  for (std::int64_t i0 = 0; i0 < n; i0 += simd::kGemvBlockRows) {
    const std::int64_t nb = std::min(simd::kGemvBlockRows, n - i0);
    k.gemv(out + i0 * ldo, ldo, rows_q + i0 * simd::act_row_bytes(w.cols), nb, w.row(r0), w.row_bytes, rows, w.cols);
  }
}

// The unpacked route (every block type; the only one of the K-quants): kUnpackRows weight rows at a time
// dequantised to an fp32 tile that stays in L1/L2, then fp32 matrix-vector products with the float
// activations.
constexpr std::int64_t kUnpackRows = 4;

void unpacked_gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const WeightMatrix& w,
                   std::int64_t r0, std::int64_t rows, SimdPath path) {
  const auto* inp = static_cast<const float*>(act);
  thread_local AlignedBuffer<float> tile;
  if (tile.size() < static_cast<std::size_t>(kUnpackRows * w.cols))
    tile.resize(static_cast<std::size_t>(kUnpackRows * w.cols));
  for (std::int64_t rr = 0; rr < rows; rr += kUnpackRows) {
    const std::int64_t nr = std::min(kUnpackRows, rows - rr);
    quant_rows_to_f32(tile.data(), w, r0 + rr, nr, path);
    for (std::int64_t i0 = 0; i0 < n; i0 += simd::kGemvBlockRows) {
      const std::int64_t nb = std::min(simd::kGemvBlockRows, n - i0);
      simd::gemv_f32(out + i0 * ldo + rr, ldo, inp + i0 * w.cols, nb, tile.data(), w.cols, nr, w.cols, path);
    }
  }
}

constexpr WeightTypeKernels kQ8Act{&quant_rows_to_f32, &q8_gemv, &q8_act_bytes, &q8_prepare};
constexpr WeightTypeKernels kUnpacked{&quant_rows_to_f32, &unpacked_gemv, nullptr, nullptr};

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
    case DType::kQ8_0R:
    case DType::kQ4_0R:
    case DType::kQ4_1R: return &kQ8Act;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return &kUnpacked;
    default: return nullptr;
  }
}

const WeightTypeKernels* unpacked_weight_kernels(DType dtype) {
  return dtype_is_quantized(dtype) ? &kUnpacked : nullptr;
}

}  // namespace zebra
