// One training step: the gradients of a step's micro-batches and the optimizer update, shared by the trainer
// (train/trainer.cpp) and the training benchmarks (bench/train.cpp, bench/bf16.cpp).
//
// The loss and the gradient of a step are the mean over ALL scored targets (targets >= 0) of all its
// micro-batches together, not the mean of the micro-batches' means: with micro-batches of n_1 and n_2 scored
// targets, every target weighs 1 / (n_1 + n_2). The two agree only when every micro-batch scores the same
// number of targets; instruction data, which scores only the answers, does not.
#pragma once

#include <cstdint>
#include <span>

#include "zebra/model/batch.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/optimizer.hpp"

namespace zebra {

// Number of targets >= 0 over all micro-batches (each [B, T]; a null targets pointer counts 0).
std::int64_t count_scored_targets(std::span<const BatchView> micro_batches);

// Zeroes the model's gradients, then runs forward_backward on each micro-batch with the step's total count of
// scored targets as the mean's denominator. Afterwards model.grads() holds d(mean loss)/d(params) of the whole
// step; the result sums loss and targets over the micro-batches (result.mean() is the step's loss). A step with
// no scored target has zero gradients and n_valid 0. Stops before the update, so that the caller can refuse a
// non-finite loss first.
// `per_micro_batch`, when not empty (one entry per micro-batch), receives each micro-batch's own loss sum and count.
// `mean_over` > 0 replaces the count of scored targets as the denominator: a rank of a distributed step passes the
// count of the whole step, of which its micro-batches are a part (train/trainer.cpp).
LossResult step_gradients(Transformer<float>& model, std::span<const BatchView> micro_batches,
                          std::span<LossResult> per_micro_batch = {}, std::int64_t mean_over = 0);

struct StepResult {
  LossResult loss;         // summed over the micro-batches; loss.mean() is the token-weighted mean
  double grad_norm = 0.0;  // global gradient norm before clipping
};

// The optimizer update of a step whose gradients are in model.grads(): clipping (OptimizerOptions::grad_clip)
// and AdamW at learning rate `lr`. Returns the gradient norm before clipping.
double apply_step_update(Transformer<float>& model, Optimizer& optimizer, double lr);

// step_gradients, then apply_step_update.
StepResult train_step(Transformer<float>& model, Optimizer& optimizer, std::span<const BatchView> micro_batches,
                      double lr);

}  // namespace zebra
