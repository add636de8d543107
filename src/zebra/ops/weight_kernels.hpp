// The table behind weight_matmul (ops/weight_matmul.hpp): per weight dtype, the kernels its float product
// needs. F32 and F64 go to the BLAS instead and have no entry. A new dtype (Q8_0, Q4_0, ... from ops/quant/)
// adds one entry to weight_type_kernels() in weight_kernels.cpp; the driver in weight_matmul.cpp (threads,
// tiling, checks) serves it unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/ops/weight.hpp"

namespace zebra {

struct WeightTypeKernels {
  // Rows [r0, r0 + rows) of w as fp32: dst [rows, w.cols], contiguous. Runs on the calling thread.
  void (*rows_to_f32)(float* dst, const WeightMatrix& w, std::int64_t r0, std::int64_t rows, SimdPath path);
  // The small-N product for weight rows [r0, r0 + rows): out[i * ldo + r - r0] = inp[i, :] . w[r, :] for
  // i < n <= kGemvMaxRows; out [n, ldo] (pointing at column r0). `act` is inp [n, w.cols] (floats), or what
  // prepare_activations made of it when the entry has one. Runs on the calling thread.
  void (*gemv)(float* out, std::int64_t ldo, const void* act, std::int64_t n, const WeightMatrix& w, std::int64_t r0,
               std::int64_t rows, SimdPath path);
  // Optional (null: gemv reads the floats): the activations in the form gemv wants (for example quantized to
  // 8-bit blocks for a Q8_0 dot product), made once per call before the threads split the rows, into
  // prepared_bytes(n, cols) bytes of per-thread scratch.
  std::size_t (*prepared_bytes)(std::int64_t n, std::int64_t cols) = nullptr;
  void (*prepare_activations)(void* prepared, const float* inp, std::int64_t n, std::int64_t cols,
                              SimdPath path) = nullptr;
};

// The kernels of a dtype, or null when float products with weights of that dtype are not implemented.
// Q8_0, Q4_0, Q4_1: decode products on activations quantized to 8-bit blocks (integer dot products); the
// K-quants: the unpacked route below.
const WeightTypeKernels* weight_type_kernels(DType dtype);
// The unpacked route for any block-quantized dtype (null otherwise): a few weight rows at a time dequantised
// to fp32 in L1, then fp32 products with the float activations. For comparing the two decode routes
// (zebra bench quant) and as the K-quants' entry.
const WeightTypeKernels* unpacked_weight_kernels(DType dtype);

}  // namespace zebra
