// Rows of any DType to and from float: the plain scalar reference of the block-quantized formats
// (ops/quant/blocks.hpp), used to dequantise weights that have no kernel yet and by tests as the
// statement of the maths. The SIMD kernels of the quantized formats (quantized dot products and
// matrix-vector products, chosen at run time as in ops/simd/) belong beside this file, each tested
// against these references.
//
// A row is n values: for a block-quantized dtype n must be a multiple of dtype_block_elements and the
// row is dtype_row_bytes(dtype, n) bytes of consecutive blocks. Source bytes may be unaligned (they
// come straight from a mapped file).
#pragma once

#include <cstdint>

#include "zebra/util/dtype.hpp"

namespace zebra::quant {

// dst[n] = the values of src (F32, F16, BF16, F64 or any block-quantized type). Throws when n does not
// fit the block size.
void dequantize_row(DType dtype, const void* src, float* dst, std::int64_t n);

// dst (dtype_row_bytes(dtype, n) bytes) = src[n] quantized with ggml's reference rounding:
//   Q8_0  d = absmax / 127, q = round(x / d)
//   Q4_0  d = m / -8 with m the value of largest magnitude (sign kept), q = min(15, trunc(x / d + 8.5))
//   Q4_1  d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))
// (the divisions use the float d; the block stores d rounded to f16). Also F32, F16 and BF16 (round to
// nearest even), and the repacked Q8_0R, Q4_0R, Q4_1R (quantized as their ggml type, then repack_row).
// Throws for the K-quants (no reference quantizer here), for a non-finite input, and for
// a block whose scale overflows f16.
void quantize_row(DType dtype, const float* src, void* dst, std::int64_t n);

// The repacked in-memory dtype of a ggml dtype (Q8_0 -> Q8_0R, Q4_0 -> Q4_0R, Q4_1 -> Q4_1R; util/dtype.hpp
// gives the layout), or the dtype itself when it has none.
DType repacked_dtype(DType dtype);
// dst (dtype_row_bytes bytes) = the row src of n values of `from` (Q8_0, Q4_0, Q4_1) in repacked_dtype(from):
// the same quants and scales, moved. dequantize_row gives the same floats for both rows.
void repack_row(DType from, const void* src, void* dst, std::int64_t n);

// The parts of a repacked row of n values (Q8_0R, Q4_0R, Q4_1R): q [n] the stored quants (int8, or 0..15),
// d [n / 32] the scales and c [n / 32] the offset factors (m for Q4_1R, -8 d for Q4_0R, 0 for Q8_0R), as
// floats. For the scalar reference kernel.
void repacked_parts(DType dtype, const void* src, std::int64_t n, std::int8_t* q, float* d, float* c);

}  // namespace zebra::quant
