// RMSNorm: y = x / sqrt(mean(x^2) + eps) * g.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"

namespace zebra {

// out[N, D] (overwritten), rstd[N] = 1/sqrt(mean(x^2)+eps) (overwritten, saved for backward),
// inp[N, D], weight[D]. options: threads, SIMD path (ops/compute.hpp).
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t d, double eps,
                     const ComputeOptions& options = {});

// dinp[N, D] overwritten; dweight[D] accumulates (+=).
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, std::int64_t n,
                      std::int64_t d, const ComputeOptions& options = {});

}  // namespace zebra
