// AdamW over a ParameterSet: moments mirror the parameter layout (llm.c style), weight decay per
// tensor (none on norms and embeddings unless asked), global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <vector>

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

// sqrt(sum g^2), summed in double in a fixed order (deterministic for any thread count): sums of squares over
// blocks of kGradNormBlock elements, then the blocks in order.
inline constexpr std::size_t kGradNormBlock = std::size_t{1} << 14;
double global_grad_norm(const float* grads, std::size_t n);
// The block sums of squares of grads[begin, end) (begin a multiple of kGradNormBlock): concatenated over
// consecutive ranges and added in order they give exactly global_grad_norm's sum (train/data_parallel.hpp).
std::vector<double> grad_square_blocks(const float* grads, std::size_t begin, std::size_t end);
// Throws (naming the step) when the gradient norm is NaN or infinite, before anything is updated.
void check_gradient_norm(double norm, std::int64_t step);
// The factor a step multiplies the gradients by: grad_scale, times grad_clip / norm when norm exceeds it.
double clip_factor(double norm, double grad_clip, double grad_scale);

// Elements [begin, end) of the parameter buffer: the slice whose moments one rank keeps with a sharded
// optimizer (ZeRO stage 1); {0, total} is all of them.
struct ParamRange {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};

class Optimizer {
 public:
  // Moments for the parameters in `range` ({0, 0}: all of them).
  Optimizer(const ParamLayout& layout, OptimizerOptions options, ParamRange range = {});

  // One step over all parameters: clips to options.grad_clip (after multiplying by grad_scale) and updates
  // params. Returns the gradient norm before clipping (after grad_scale). Needs the moments of every parameter.
  double step(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double grad_scale = 1.0);
  // The AdamW update of the parameters in range() only, with the gradients multiplied by `scale` (clip_factor).
  // Counts a step. Element for element the same arithmetic as step(), so sharded and whole updates agree bit
  // for bit.
  void update(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double scale);
  ParamRange range() const { return range_; }

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
  ParamRange range_;
  AlignedBuffer<float> m_, v_;
  std::int64_t step_ = 0;
};

}  // namespace zebra
