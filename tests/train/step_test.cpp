// One training step (train/step.hpp): micro-batches with very different numbers of scored targets give the loss
// and gradient of the token-weighted mean, i.e. those of one big batch holding the same sequences; the old mean of
// the micro-batches' means would not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "train/tiny_train_config.hpp"
#include "zebra/train/step.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

constexpr double kU = 0x1p-24;  // fp32 unit roundoff

ModelConfig step_config() { return test::tiny_train_config(32); }

// Four sequences of T = 12 in micro-batches of 1, 2 and 1 sequences scoring 12, 1 + 1 and 5 targets (the rest
// -1): 19 in all, so a target of the first micro-batch weighs 1/19 in the step's mean but 1/36 in the mean of
// the three means, one of the second 1/19 against 1/6.
struct UnevenStep {
  static constexpr std::int64_t kT = 12;
  std::vector<std::int32_t> tokens, targets;  // [4, T]
  std::vector<BatchView> micro;
  BatchView whole;  // the same four sequences as one batch [4, T]

  UnevenStep() {
    const std::int64_t scored[4] = {12, 1, 1, 5};
    Rng rng(3);
    for (std::int64_t s = 0; s < 4; ++s) {
      for (std::int64_t i = 0; i < kT; ++i) {
        tokens.push_back(static_cast<std::int32_t>(rng.below(32)));
        const auto t = static_cast<std::int32_t>(rng.below(32));
        targets.push_back(i >= kT - scored[s] ? t : -1);
      }
    }
    std::int64_t first = 0;
    for (std::int64_t n : {1, 2, 1}) {
      micro.push_back(BatchView{n, kT, tokens.data() + first * kT, targets.data() + first * kT, nullptr});
      first += n;
    }
    whole = BatchView{4, kT, tokens.data(), targets.data(), nullptr};
  }
  std::int64_t rows() const { return 4 * kT; }
};

// Large init (std 0.3): the per-token losses and gradients differ a lot between tokens, so that weighing them
// differently shows.
Transformer<float> step_model() {
  Transformer<float> m(step_config());
  init_parameters(m.params(), 5, 0.3);
  return m;
}

std::vector<float> grads_of(Transformer<float>& m) { return {m.grads().data(), m.grads().data() + m.grads().size()}; }

// Tolerances. The micro-batch step and the big batch run the same per-row arithmetic; what differs is the order
// of fp32 sums over rows (each micro-batch's product sums its own rows and adds them into the gradient; the big
// batch sums all R = 48 rows in one product), and possibly the last bits of products whose BLAS path depends on
// the row count (ops/matmul.hpp). Reordering an fp32 sum of R terms moves it by at most 2 (R - 1) u sum|t|
// (u = 2^-24). sum|t| over the rows is not visible from outside the model; we bound it by R max|t| and a row's
// term by the largest gradient entry of its tensor (at this random init the row terms have no systematic
// cancellation), so per tensor: |g_micro - g_whole| <= 2 (R - 1) R u max|g_tensor| (2.7e-4 relative; measured
// differences are 1e-7 relative, and a wrong weighting moves the gradient by O(max|g|)).
// The loss sums per-row losses in double; the rows' fp32 logits carry the same reordering at most, so
// |loss_micro - loss_whole| <= 2 (R - 1) u loss.
struct Tolerances {
  std::vector<double> per_tensor;  // indexed like layout.tensors
  double loss = 0.0;
};

Tolerances tolerances(const Transformer<float>& m, const std::vector<float>& g_whole, double loss, std::int64_t rows) {
  const double r = static_cast<double>(rows);
  Tolerances tol;
  for (const TensorInfo& t : m.params().layout.tensors) {
    double max_g = 0.0;
    for (std::size_t i = 0; i < t.numel; ++i) max_g = std::max(max_g, std::fabs(double{g_whole[t.offset + i]}));
    tol.per_tensor.push_back(2.0 * (r - 1.0) * r * kU * max_g);
  }
  tol.loss = 2.0 * (r - 1.0) * kU * std::fabs(loss);
  return tol;
}

// Largest |a - b| / tolerance over all entries (> 1: outside the tolerance).
double worst_ratio(const Transformer<float>& m, const std::vector<float>& a, const std::vector<float>& b,
                   const Tolerances& tol) {
  double worst = 0.0;
  const auto& tensors = m.params().layout.tensors;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const TensorInfo& t = tensors[k];
    for (std::size_t i = 0; i < t.numel; ++i) {
      const double d = std::fabs(double{a[t.offset + i]} - double{b[t.offset + i]});
      worst = std::max(worst, d / tol.per_tensor[k]);
    }
  }
  return worst;
}

TEST(TrainStep, CountsScoredTargetsOfAllMicroBatches) {
  const UnevenStep s;
  EXPECT_EQ(count_scored_targets(s.micro), 19);
  EXPECT_EQ(count_scored_targets({&s.whole, 1}), 19);
  const BatchView no_targets{1, 4, s.tokens.data(), nullptr, nullptr};
  EXPECT_EQ(count_scored_targets({&no_targets, 1}), 0);
}

TEST(TrainStep, UnevenMicroBatchesGiveTheTokenWeightedMeanOfOneBigBatch) {
  const UnevenStep s;
  Transformer<float> m = step_model();
  const LossResult whole = step_gradients(m, {&s.whole, 1});
  const std::vector<float> g_whole = grads_of(m);
  const LossResult micro = step_gradients(m, s.micro);  // zeroes the gradients first
  const std::vector<float> g_micro = grads_of(m);

  ASSERT_EQ(whole.n_valid, 19);
  EXPECT_EQ(micro.n_valid, 19);
  const Tolerances tol = tolerances(m, g_whole, whole.mean(), s.rows());
  EXPECT_NEAR(micro.mean(), whole.mean(), tol.loss);
  const double max_g = *std::max_element(tol.per_tensor.begin(), tol.per_tensor.end());
  ASSERT_GT(max_g, 0.0);  // a gradient of zeros would match anything
  EXPECT_LE(worst_ratio(m, g_micro, g_whole, tol), 1.0);
}

// The same micro-batches weighed as the trainer used to: each micro-batch's own mean, averaged over the three
// (forward_backward with grad_scale 1/3 and mean_over 0). It must miss the big batch by far more than the
// tolerance, or the test above would not tell the two weightings apart.
TEST(TrainStep, TheMeanOfMicroBatchMeansWouldFailThatCheck) {
  const UnevenStep s;
  Transformer<float> m = step_model();
  const LossResult whole = step_gradients(m, {&s.whole, 1});
  const std::vector<float> g_whole = grads_of(m);
  m.zero_grads();
  double mean_of_means = 0.0;
  for (const BatchView& b : s.micro) mean_of_means += m.forward_backward(b, 1.0 / 3.0).mean() / 3.0;
  const std::vector<float> g_old = grads_of(m);

  const Tolerances tol = tolerances(m, g_whole, whole.mean(), s.rows());
  EXPECT_GT(std::fabs(mean_of_means - whole.mean()), 100.0 * tol.loss) << mean_of_means << " vs " << whole.mean();
  EXPECT_GT(worst_ratio(m, g_old, g_whole, tol), 100.0);
}

TEST(TrainStep, AStepWithoutScoredTargetsHasZeroGradients) {
  UnevenStep s;
  std::fill(s.targets.begin(), s.targets.end(), -1);
  Transformer<float> m = step_model();
  step_gradients(m, s.micro);  // gradients of a real step first, to see them cleared
  const LossResult r = step_gradients(m, s.micro);
  EXPECT_EQ(r.n_valid, 0);
  EXPECT_EQ(r.mean(), 0.0);
  const std::vector<float> g = grads_of(m);
  ASSERT_FALSE(g.empty());
  EXPECT_TRUE(std::all_of(g.begin(), g.end(), [](float x) { return x == 0.0f; }));
}

TEST(TrainStep, TrainStepUpdatesWithTheStepsGradient) {
  const UnevenStep s;
  Transformer<float> m = step_model();
  OptimizerOptions oo;
  oo.grad_clip = 0.0;
  Optimizer opt(m.params().layout, oo);
  const std::vector<float> before(m.params().data.data(), m.params().data.data() + m.params().data.size());
  const StepResult r = train_step(m, opt, s.micro, 1e-3);
  EXPECT_EQ(r.loss.n_valid, 19);
  EXPECT_EQ(r.grad_norm, global_grad_norm(m.grads().data(), m.grads().size()));
  EXPECT_GT(r.grad_norm, 0.0);
  EXPECT_EQ(opt.steps_taken(), 1);
  std::size_t moved = 0;
  for (std::size_t i = 0; i < before.size(); ++i) moved += m.params().data.data()[i] != before[i] ? 1 : 0;
  EXPECT_GT(moved, before.size() / 2);  // AdamW's first step moves every entry with a nonzero gradient by ~lr
}

// A NaN (or infinity) injected into the gradients stops training cleanly: the update is refused before it
// touches anything, so parameters, moments and the step count stay those of the last good step.
TEST(TrainStep, NonFiniteGradientIsRefusedLeavingTheStateUnchanged) {
  const UnevenStep s;
  for (const float bad : {std::nanf(""), INFINITY}) {
    Transformer<float> m = step_model();
    Optimizer opt(m.params().layout, OptimizerOptions{});
    (void)train_step(m, opt, s.micro, 1e-3);  // one good step, so the moments are not all zero
    const std::vector<float> params(m.params().data.data(), m.params().data.data() + m.params().data.size());
    const std::vector<float> moment(opt.m().data(), opt.m().data() + opt.m().size());
    (void)step_gradients(m, s.micro);
    m.grads().data()[m.grads().size() / 2] = bad;
    try {
      (void)apply_step_update(m, opt, 1e-3);
      ADD_FAILURE() << "a gradient holding " << bad << " was applied";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("training stopped: the gradient norm is"), std::string::npos) << e.what();
    }
    EXPECT_EQ(opt.steps_taken(), 1);
    EXPECT_TRUE(std::equal(params.begin(), params.end(), m.params().data.data()));
    EXPECT_TRUE(std::equal(moment.begin(), moment.end(), opt.m().data()));
  }
}

TEST(TrainStep, NoMicroBatchIsRefused) {
  Transformer<float> m = step_model();
  EXPECT_THROW(step_gradients(m, std::span<const BatchView>{}), Error);
}

}  // namespace
}  // namespace zebra
