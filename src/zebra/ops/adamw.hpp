// AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected moments.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"

namespace zebra {

struct AdamWHyper {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

// params[n], grads[n], m[n], v[n]; `step` counts from 1. grad_scale multiplies grads first
// (gradient clipping and accumulation averaging). decay=false skips weight decay for this span. options: threads,
// SIMD path (ops/compute.hpp).
template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, std::int64_t n, const AdamWHyper& h, std::int64_t step,
                  bool decay, double grad_scale = 1.0, const ComputeOptions& options = {});

}  // namespace zebra
