// AdamW over a ParameterSet: moments mirror the parameter layout (llm.c style), weight decay per
// tensor (none on norms and embeddings unless asked), global-norm gradient clipping.
#pragma once

#include <cstdint>

#include "zebra/model/params.hpp"
#include "zebra/ops/adamw.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

struct OptimizerOptions {
  AdamWHyper adamw;
  double grad_clip = 1.0;         // max global gradient norm; <= 0 disables clipping
  bool decay_norms = false;       // apply weight decay to norm gains too
  bool decay_embeddings = false;  // apply weight decay to embedding tables too
};

// sqrt(sum g^2), summed in double in a fixed order (deterministic for any thread count).
double global_grad_norm(const float* grads, std::size_t n);

class Optimizer {
 public:
  Optimizer(const ParamLayout& layout, OptimizerOptions options);

  // One step: clips to options.grad_clip (after multiplying by grad_scale) and updates params.
  // Returns the gradient norm before clipping (after grad_scale).
  double step(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double grad_scale = 1.0);

  std::int64_t steps_taken() const { return step_; }
  void set_steps_taken(std::int64_t s) { step_ = s; }
  AlignedBuffer<float>& m() { return m_; }
  AlignedBuffer<float>& v() { return v_; }
  const AlignedBuffer<float>& m() const { return m_; }
  const AlignedBuffer<float>& v() const { return v_; }
  const OptimizerOptions& options() const { return options_; }

 private:
  const ParamLayout* layout_;
  OptimizerOptions options_;
  AlignedBuffer<float> m_, v_;
  std::int64_t step_ = 0;
};

}  // namespace zebra
