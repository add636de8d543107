// Element types of tensors, as a run-time property (DESIGN.md §2: weight types are data, not templates).
//
// Floating types store one element per value. Block-quantized types (the GGUF/ggml formats) store a row
// as blocks of `dtype_block_elements` values, each block `dtype_block_bytes` bytes; a row of n elements
// needs n to be a multiple of the block size. The byte layouts of the blocks are those of ggml
// (ops/quant/ holds their structs and kernels):
//   Q8_0  32 values: f16 scale d, 32 x int8                       34 bytes   x = d * q
//   Q4_0  32 values: f16 d, 16 bytes of 4-bit q (low nibbles = values 0..15, high = 16..31)
//                                                                 18 bytes   x = d * (q - 8)
//   Q4_1  32 values: f16 d, f16 m, 16 bytes of 4-bit q            20 bytes   x = d * q + m
//   Q4_K  256 values: 8 sub-blocks of 32 with 6-bit scales/mins  144 bytes
//   Q5_K  256 values: as Q4_K plus one high bit per value         176 bytes
//   Q6_K  256 values: 16 sub-blocks of 16, 8-bit scales           210 bytes
// and zebra's in-memory repacking of the first three (never written to a file; ops/quant/quant.hpp's
// repack_row makes them), the same bytes per block laid out for the SIMD kernels: a row is its quants for
// all blocks, then the f16 scales d of all blocks (then, for Q4_1R, the f16 minima m):
//   Q8_0R  the int8 values in order                               34 bytes / block
//   Q4_0R, Q4_1R  the nibbles of each group of 4 blocks (128 values) in 64 bytes, byte i = value i | value
//          i + 64 << 4 (one 64-byte load and two masks give blocks 0-1 and 2-3); a last pair of blocks in 32
//          bytes (i | i + 32 << 4), a last single block as ggml's 16      18 / 20 bytes / block
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zebra {

enum class DType { kF32, kF16, kBF16, kF64, kQ8_0, kQ4_0, kQ4_1, kQ4_K, kQ5_K, kQ6_K, kQ8_0R, kQ4_0R, kQ4_1R };

// The usual spelling: "F32", "F16", "BF16", "F64" (the safetensors names), "Q8_0", "Q4_0", "Q4_1",
// "Q4_K", "Q5_K", "Q6_K" (the ggml names), "Q8_0R", "Q4_0R", "Q4_1R" (zebra's repacked layouts).
const char* to_string(DType d);
// Accepts those spellings, lower case, and float32/float16/bfloat16/float64; throws listing the allowed.
DType parse_dtype(const std::string& s);

bool dtype_is_quantized(DType d);
// Elements per block (1 for the floating types) and bytes per block (the element size for them).
std::int64_t dtype_block_elements(DType d);
std::size_t dtype_block_bytes(DType d);
// Bytes per element of a floating type; throws for a block-quantized type (it has no per-element size).
std::size_t dtype_size(DType d);
// Bytes of a row of n elements; throws when n is not a multiple of the block size or the size overflows.
std::size_t dtype_row_bytes(DType d, std::int64_t n);

// dst[n] = the n values of a floating dtype (F32, F16, BF16, F64) stored little-endian at src (which
// may be unaligned, e.g. inside a mapped file). Throws for a block-quantized dtype (ops/quant/ reads those).
void convert_floating(DType d, const void* src, float* dst, std::size_t n);
void convert_floating(DType d, const void* src, double* dst, std::size_t n);

// Scalar conversions (round to nearest, ties to even; NaN stays NaN, overflow becomes infinity).
std::uint16_t float_to_bf16(float x);
std::uint16_t float_to_f16(float x);
std::uint16_t double_to_bf16(double x);  // rounds once, directly from double (no double rounding)
std::uint16_t double_to_f16(double x);
float bf16_to_float(std::uint16_t h);
float f16_to_float(std::uint16_t h);

}  // namespace zebra
