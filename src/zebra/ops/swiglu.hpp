// SwiGLU: out = silu(gate) * up, with gate and up side by side in one buffer (one fused GEMM).
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"

namespace zebra {

// gate_up[N, 2F] = [gate | up] per row; out[N, F] overwritten. options: threads, SIMD path (ops/compute.hpp).
template <typename T>
void swiglu_forward(T* out, const T* gate_up, std::int64_t n, std::int64_t f, const ComputeOptions& options = {});

// dgate_up[N, 2F] overwritten.
template <typename T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, std::int64_t n, std::int64_t f,
                     const ComputeOptions& options = {});

}  // namespace zebra
