// Kernels over the 32-value block formats (Q8_0, Q4_0, Q4_1 of ops/quant/blocks.hpp), one set per path
// (scalar reference, AVX2, AVX-512) chosen at run time; ops/weight_kernels.cpp threads over them and each call
// here runs on the calling thread.
//
// The decode product quantizes the activations too (as llama.cpp does): each run of 32 activations gets a float
// scale d = absmax / 127 and 32 int8 values q = round-to-nearest-even(x * 127 / absmax), so that a
// weight block against an activation block is one exact integer dot product, taken 32 bytes at a time
// (maddubs + madd; two blocks per 512-bit register on AVX-512), then scaled:
//   Q8_0  dw * d * sum(qw qa)
//   Q4_0  dw * (d * sum(qw qa) - 8 * sum_a)        qw in [0, 15], sum_a = d * sum(qa)
//   Q4_1  dw * d * sum(qw qa) + m * sum_a
// The integer sums are the same on every path; the float sums over blocks differ in order only. The
// activation rounding is the same on every path too (nearest even, from the same float scale), so paths
// differ by fp32 summation order alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/util/dtype.hpp"

namespace zebra::simd {

inline constexpr std::int64_t kActBlock = 32;

// One activation row of cols values quantized (cols a multiple of 32), act_row_bytes(cols) bytes:
//   qs  [cols] int8          x[k] ~ d[k / 32] * qs[k]   (contiguous, so that two blocks are one 64-byte load)
//   d   [cols / 32] float    block scales
//   sum [cols / 32] float    d * (sum of the block's qs), for the offset terms of Q4_0 / Q4_1
// Rows of a call follow each other.
inline std::size_t act_row_bytes(std::int64_t cols) {
  return static_cast<std::size_t>(cols) + 2 * sizeof(float) * static_cast<std::size_t>(cols / kActBlock);
}

struct QuantKernels {
  // dst (act_row_bytes(cols) bytes) = the row x [cols] quantized (cols a multiple of 32).
  void (*quantize_activations)(void* dst, const float* x, std::int64_t cols);
  // out[i * ldo + r] = sum over blocks of (weight row r) . (activation row i) for i < n (1 <= n <= 4), r < rows:
  // act: n quantized rows, weight rows of cols values row_bytes apart starting at w.
  void (*gemv)(float* out, std::int64_t ldo, const void* act, std::int64_t n, const void* w, std::size_t row_bytes,
               std::int64_t rows, std::int64_t cols);
  // dst [n] = the values of the n / 32 blocks at src (as quant::dequantize_row, bit for bit).
  void (*to_f32)(float* dst, const void* src, std::int64_t n);
};

// Whether quant_kernels has kernels for dtype: Q8_0, Q4_0, Q4_1 and their repacked forms Q8_0R, Q4_0R, Q4_1R.
bool has_quant_kernels(DType dtype);
// The kernels of dtype on path; throws when the CPU cannot run the path or for a dtype without kernels.
const QuantKernels& quant_kernels(DType dtype, SimdPath path);

// out[i * ldo + r] = inp[i, :] . w[r, :] (fp32 rows, w rows w_stride apart) for i < n <= 4, r < rows: the
// product behind the "unpacked" route (weight rows dequantised to fp32 into L1, then this).
void gemv_f32(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const float* w, std::int64_t w_stride,
              std::int64_t rows, std::int64_t cols, SimdPath path);

}  // namespace zebra::simd
