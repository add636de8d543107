// Plain scalar reference for ops/attention.hpp, in double precision: for every (batch, head, query) it
// scores all keys, masks with key_visible (ops/mask.hpp), and takes a full softmax. O(T^2) time, O(T) extra
// memory per call. Used by tests to check the flash kernels, and as a readable statement of the maths.
// Layouts, strides and overwrite rules are exactly those of attention_forward / attention_backward.
#pragma once

#include "zebra/ops/attention.hpp"

namespace zebra::ref {

// out [B, T, H, hd] contiguous, lse [B, H, T]: overwritten.
void attention_forward(double* out, double* lse, const double* q, const double* k, const double* v,
                       const AttentionShape& shape, const AttentionMask& mask);

// dq, dk, dv: overwritten (only the columns of q, k, v in their rows). The softmax and D = rowsum(dout o out)
// are recomputed from q, k, v, so the reference does not trust the forward pass it checks: out and lse are
// taken only to keep the kernel's signature, and are not read.
void attention_backward(double* dq, double* dk, double* dv, const double* dout, const double* out, const double* lse,
                        const double* q, const double* k, const double* v, const AttentionShape& shape,
                        const AttentionMask& mask);

}  // namespace zebra::ref
