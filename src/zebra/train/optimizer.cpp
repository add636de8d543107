#include "zebra/train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra {

std::vector<double> grad_square_blocks(const float* grads, std::size_t begin, std::size_t end) {
  ZEBRA_CHECK((begin % kGradNormBlock == 0 || begin == end) && begin <= end, "grad_square_blocks: range [", begin, ", ",
              end, ") does not start on a block");
  const std::size_t n_blocks = (end - begin + kGradNormBlock - 1) / kGradNormBlock;
  std::vector<double> partial(n_blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (std::size_t b = 0; b < n_blocks; ++b) {
    double s = 0.0;
    const std::size_t last = std::min(end, begin + (b + 1) * kGradNormBlock);
    for (std::size_t i = begin + b * kGradNormBlock; i < last; ++i) s += static_cast<double>(grads[i]) * grads[i];
    partial[b] = s;
  }
  return partial;
}

double global_grad_norm(const float* grads, std::size_t n) {
  // Fixed-size blocks summed in a fixed order: the result does not depend on the thread count.
  double total = 0.0;
  for (double p : grad_square_blocks(grads, 0, n)) total += p;
  return std::sqrt(total);
}

void check_gradient_norm(double norm, std::int64_t step) {
  // A NaN or infinite gradient would poison every parameter and both moments for good: refuse it with all of
  // them as they were, so that the last state (and checkpoint) stays usable.
  ZEBRA_CHECK(std::isfinite(norm), "training stopped: the gradient norm is ", norm, " at optimizer step ", step,
              " (parameters and optimizer moments left unchanged); lower the learning rate or check the data");
}

double clip_factor(double norm, double grad_clip, double grad_scale) {
  return grad_clip > 0.0 && norm > grad_clip ? grad_scale * (grad_clip / norm) : grad_scale;
}

Optimizer::Optimizer(const ParamLayout& layout, OptimizerOptions options, ParamRange range)
    : layout_(&layout), options_(options), range_(range.end == 0 ? ParamRange{0, layout.total} : range),
      m_(range_.size()), v_(range_.size()) {
  ZEBRA_CHECK(range_.begin <= range_.end && range_.end <= layout.total, "Optimizer: parameter range [", range_.begin,
              ", ", range_.end, ") outside the ", layout.total, " parameters");
}

double Optimizer::step(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double grad_scale) {
  ZEBRA_CHECK(range_.begin == 0 && range_.end == layout_->total,
              "Optimizer::step needs the moments of every parameter; a sharded optimizer takes update()");
  const double norm = grad_scale * global_grad_norm(grads.data(), grads.size());
  check_gradient_norm(norm, step_ + 1);
  update(params, grads, lr, clip_factor(norm, options_.grad_clip, grad_scale));
  return norm;
}

void Optimizer::update(ParameterSet<float>& params, const AlignedBuffer<float>& grads, double lr, double scale) {
  ++step_;
  AdamWHyper h = options_.adamw;
  h.lr = lr;
  for (const TensorInfo& t : layout_->tensors) {
    // The part of the tensor inside the range (AdamW is elementwise, so a cut tensor updates as a whole one).
    const std::size_t lo = std::max(t.offset, range_.begin), hi = std::min(t.offset + t.numel, range_.end);
    if (lo >= hi) continue;
    bool decay = t.decay || (t.is_norm && options_.decay_norms) || (t.is_embedding && options_.decay_embeddings);
    adamw_update(params.data.data() + lo, grads.data() + lo, m_.data() + (lo - range_.begin),
                 v_.data() + (lo - range_.begin), static_cast<std::int64_t>(hi - lo), h, step_, decay, scale);
  }
}

}  // namespace zebra
