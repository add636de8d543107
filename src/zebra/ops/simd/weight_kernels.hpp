// Kernels over 16-bit floating storage (bf16, f16), compiled once per instruction set (simd/traits.hpp) and
// chosen at run time: the matrix-vector product of a few activation rows against 16-bit weight rows (the
// weights read once, converted in registers: AVX-512 vcvtph2ps / a 16-bit shift for bf16, AVX2 + F16C the
// same on 8 lanes; fp32 accumulation), and the conversions of buffers to and from fp32. ops/weight_matmul.cpp
// and ops/convert.cpp thread over them; each call here runs on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/util/dtype.hpp"

namespace zebra::simd {

// Activation rows one gemv call takes at most; ops/weight_matmul.cpp cuts larger small-N products into blocks
// of this many.
inline constexpr std::int64_t kGemvBlockRows = 4;

struct HalfKernels {
  // out[i * ldo + r] = sum_k inp[i * cols + k] * w[r * w_stride + k] for i < n (n <= kGemvBlockRows), r <
  // rows; inp [n, cols], w [rows, cols] with rows w_stride elements apart, out [n, ldo]. Each output is one
  // fp32 sum taken in two chains of W lanes, combined at the end (the order depends on the path, not on
  // threads).
  void (*gemv)(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const std::uint16_t* w,
               std::int64_t w_stride, std::int64_t rows, std::int64_t cols);
  // dst[i] = the value of src[i] (exact).
  void (*to_f32)(float* dst, const std::uint16_t* src, std::int64_t n);
  // dst[i] = src[i] rounded to nearest even (overflow to infinity; NaN stays NaN, its payload may differ by
  // path).
  void (*from_f32)(std::uint16_t* dst, const float* src, std::int64_t n);
};

// The kernels of dtype (kBF16 or kF16) on path; throws when the CPU cannot run the path or dtype is neither.
const HalfKernels& half_kernels(DType dtype, SimdPath path);

}  // namespace zebra::simd
