// Products with a typed weight matrix (ops/weight.hpp): out = inp . W^T, dispatched on W's dtype.
//
//   F32   the BLAS product of ops/matmul.hpp (options.gemm spreads it, options.bf16 rounds both inputs to
//   bf16) F64   the same in double (gradient checks), double activations only BF16, F16   converted in the
//   kernel, fp32 accumulation (options.bf16 does not apply: the activations stay
//         fp32). N <= kGemvMaxRows (decoding): a SIMD matrix-vector kernel that reads each weight once and
//         converts it in registers (simd/weight_kernels.hpp), threaded over weight rows. Larger N (prefill,
//         training): tiles of weight rows converted to fp32 into a bounded per-thread scratch, one sgemm per
//         tile.
//
// Every other dtype fails with an error naming it; block-quantized types plug in as new entries of the table
// in ops/weight_kernels.hpp, without changing this interface or its callers.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/weight.hpp"

namespace zebra {

// Activation rows up to which a 16-bit (or later quantized) product runs as matrix-vector kernels instead of
// converting weight tiles for sgemm. Not measured yet (docs/performance.md will say where the crossover
// lies); 8 covers one decode step of up to 8 sequences.
inline constexpr std::int64_t kGemvMaxRows = 8;

// out [N, ldo]: columns [0, w.rows) of each row overwritten, the rest untouched (so that Q, K and V from
// separate matrices land in column slices of one [N, QKV] buffer); inp [N, w.cols] contiguous; ldo >= w.rows.
// float activations: F32, BF16, F16 weights; double activations: F64 weights. options: threads, gemm backend,
// SIMD path, bf16 (ops/compute.hpp).
void weight_matmul(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const WeightMatrix& w,
                   const ComputeOptions& options = {});
void weight_matmul(double* out, std::int64_t ldo, const double* inp, std::int64_t n, const WeightMatrix& w,
                   const ComputeOptions& options = {});

// Bytes of per-thread scratch a float weight_matmul of these sizes uses at most (the fp32 tile of the tiled
// path, prepared activations of a matrix-vector kernel, or the bf16 rounding copies for F32 with
// options.bf16), for memory planning.
std::int64_t weight_matmul_scratch_bytes(const WeightMatrix& w, std::int64_t n, const ComputeOptions& options = {});

}  // namespace zebra
