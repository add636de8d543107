// Buffers of floats to and from 16-bit storage (bf16, f16): how fp32 weights become BF16/F16 weights, and
// back. Round to nearest even, overflow to infinity, NaN stays NaN (the bits of util/dtype.hpp float_to_bf16
// / float_to_f16, except that a NaN's payload may differ by SIMD path); the widening is exact. SIMD per
// options.simd, threaded over chunks for large n.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"
#include "zebra/util/dtype.hpp"

namespace zebra {

// dst [n] of dtype (F32, BF16 or F16) = src [n] rounded to it. Throws for any other dtype.
void convert_from_f32(DType dtype, void* dst, const float* src, std::int64_t n, const ComputeOptions& options = {});
// dst [n] = src [n] of dtype (F32, BF16 or F16) as floats. Throws for any other dtype.
void convert_to_f32(float* dst, DType dtype, const void* src, std::int64_t n, const ComputeOptions& options = {});

}  // namespace zebra
