// Plain scalar reference for ops/weight_matmul.hpp, in double: each weight as stored (exact for the float
// types; for the block-quantized ones the float value quant::dequantize_row gives, which is exact for Q8_0 and
// Q4_0 and within one float rounding of d q + m for Q4_1 and the K-quants), every product and sum in double.
// For tests.
#pragma once

#include <cstdint>

#include "zebra/ops/weight.hpp"

namespace zebra::ref {

// dst [w.cols] = row r of w, exactly. Throws for a dtype the reference does not know.
void weight_row(double* dst, const WeightMatrix& w, std::int64_t r);

// out [N, w.rows] = inp [N, w.cols] . W^T, overwritten.
void weight_matmul(double* out, const double* inp, std::int64_t n, const WeightMatrix& w);

}  // namespace zebra::ref
