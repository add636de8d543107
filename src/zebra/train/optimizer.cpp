#include "zebra/train/optimizer.hpp"

#include <cmath>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra {

double global_grad_norm(const float* grads, std::size_t n) {
  // Fixed-size blocks summed in a fixed order: the result does not depend on the thread count.
  constexpr std::size_t kBlock = 1 << 14;
  const std::size_t n_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(n_blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (std::size_t b = 0; b < n_blocks; ++b) {
    double s = 0.0;
    const std::size_t end = std::min(n, (b + 1) * kBlock);
    for (std::size_t i = b * kBlock; i < end; ++i) s += static_cast<double>(grads[i]) * grads[i];
    partial[b] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return std::sqrt(total);
}

Optimizer::Optimizer(const ParamLayout& layout, OptimizerOptions options)
    : layout_(&layout), options_(options), m_(layout.total), v_(layout.total) {}

double Optimizer::step(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double grad_scale) {
  const double norm = grad_scale * global_grad_norm(grads.data(), grads.size());
  // A NaN or infinite gradient would poison every parameter and both moments for good: refuse it with all of
  // them as they were, so that the last state (and checkpoint) stays usable.
  ZEBRA_CHECK(std::isfinite(norm), "training stopped: the gradient norm is ", norm, " at optimizer step ", step_ + 1,
              " (parameters and optimizer moments left unchanged); lower the learning rate or check the data");
  double scale = grad_scale;
  if (options_.grad_clip > 0.0 && norm > options_.grad_clip) scale *= options_.grad_clip / norm;
  ++step_;
  AdamWHyper h = options_.adamw;
  h.lr = lr;
  for (const TensorInfo& t : layout_->tensors) {
    bool decay = t.decay || (t.is_norm && options_.decay_norms) || (t.is_embedding && options_.decay_embeddings);
    adamw_update(params.data.data() + t.offset, grads.data() + t.offset, m_.data() + t.offset, v_.data() + t.offset,
                 static_cast<std::int64_t>(t.numel), h, step_, decay, scale);
  }
  return norm;
}

}  // namespace zebra
