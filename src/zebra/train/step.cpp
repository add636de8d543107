#include "zebra/train/step.hpp"

#include <algorithm>

#include "zebra/util/error.hpp"

namespace zebra {

std::int64_t count_scored_targets(std::span<const BatchView> micro_batches) {
  std::int64_t count = 0;
  for (const BatchView& b : micro_batches) {
    if (b.targets == nullptr) continue;
    const std::int32_t* end = b.targets + b.batch * b.seq_len;
    count += std::count_if(b.targets, end, [](std::int32_t t) { return t >= 0; });
  }
  return count;
}

LossResult step_gradients(Transformer<float>& model, std::span<const BatchView> micro_batches,
                          std::span<LossResult> per_micro_batch, std::int64_t mean_over) {
  ZEBRA_CHECK(!micro_batches.empty(), "a training step needs at least one micro-batch");
  ZEBRA_CHECK(per_micro_batch.empty() || per_micro_batch.size() == micro_batches.size(),
              "step_gradients: ", per_micro_batch.size(), " per-micro-batch results for ", micro_batches.size(),
              " micro-batches");
  // With no scored target at all every term of the gradient is zero; 1 keeps mean_over from meaning "this
  // micro-batch's own count".
  if (mean_over <= 0) mean_over = std::max<std::int64_t>(count_scored_targets(micro_batches), 1);
  model.zero_grads();
  LossResult total;
  for (std::size_t i = 0; i < micro_batches.size(); ++i) {
    const LossResult r = model.forward_backward(micro_batches[i], 1.0, mean_over);
    if (!per_micro_batch.empty()) per_micro_batch[i] = r;
    total.loss_sum += r.loss_sum;
    total.n_valid += r.n_valid;
  }
  return total;
}

double apply_step_update(Transformer<float>& model, Optimizer& optimizer, double lr) {
  return optimizer.step(model.params(), model.grads(), lr);
}

StepResult train_step(Transformer<float>& model, Optimizer& optimizer, std::span<const BatchView> micro_batches,
                      double lr) {
  StepResult r;
  r.loss = step_gradients(model, micro_batches);
  r.grad_norm = apply_step_update(model, optimizer, lr);
  return r;
}

}  // namespace zebra
