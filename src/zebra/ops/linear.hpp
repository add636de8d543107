// Products and lookups with typed weights (ops/weight.hpp): the forward passes of model/ call these and never
// the BLAS directly, so a weight's dtype decides the kernel here and nowhere else.
#pragma once

#include <cstdint>

#include "zebra/ops/matmul.hpp"
#include "zebra/ops/weight.hpp"

namespace zebra {

// out[n, ldo] (first w.rows columns of each row overwritten) = inp[n, w.cols] . W^T.
// T = float: any dtype with a kernel; T = double: F64 only.
template <typename T>
void linear_forward(T* out, std::int64_t ldo, const T* inp, const WeightMatrix& w, std::int64_t n,
                    const MatmulOptions& options = {});

// out[n, cols] = rows tokens[i] of the table (converted to T); ids checked against table.rows.
template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const WeightMatrix& table, std::int64_t n);

// The dense T storage of w (for backward, which only dense weights have); throws naming the dtype otherwise.
template <typename T>
const T* dense_data(const WeightMatrix& w);

}  // namespace zebra
