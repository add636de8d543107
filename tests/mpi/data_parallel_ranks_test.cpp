// Data parallelism on 2 and 3 ranks: each rank computes the gradients of its share of a step's micro-batches
// with the step's whole denominator, sum_gradients adds them, and the result is the step of one process over all
// the micro-batches (grad_accum = ranks x micro-batches per rank), which every rank computes itself.
//
// Tolerance (float, u = 6e-8): one process accumulates the micro-batches' gradients into one buffer (inside the
// GEMMs, beta = 1), the ranks add theirs after; both are sums of the same per-row terms in another order, so an
// element differs by ~ n u of its terms' magnitude (n = rows summed, <= 96 here), i.e. <= ~1e-5 of the tensor's
// scale even where terms cancel. atol = 2e-5 of the scale, rtol = 1e-4; a micro-batch counted twice or lost moves
// gradients by ~1/(number of micro-batches) of the scale. Over several AdamW steps the parameters may then differ
// by up to 2 lr where a gradient is rounding noise around 0 (AdamW's first step moves by lr sign(g)), which
// changes the loss by far less than it moves: the losses of the steps agree within 1e-5 relative.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "mpi/mpi_test_util.hpp"
#include "train/tiny_train_config.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/data_parallel.hpp"
#include "zebra/train/optimizer.hpp"
#include "zebra/train/step.hpp"

namespace zebra {
namespace {

constexpr std::int64_t kPerRank = 2;  // micro-batches per rank and step
constexpr std::int64_t kSteps = 3;

// Micro-batches of step `step`: the same list on every rank (as every rank draws them from the same batcher).
std::vector<Batch> micro_batches(std::int64_t step, std::int64_t count) {
  std::vector<Batch> out;
  for (std::int64_t i = 0; i < count; ++i) {
    out.push_back(test::random_batch(2, 12, 32, static_cast<std::uint64_t>(100 * step + i), false));
    // Uneven scored counts, so that the step's denominator matters.
    for (std::size_t t = 0; t < static_cast<std::size_t>(i) * 3 && t < out.back().targets.size(); ++t) {
      out.back().targets[t] = -1;
    }
  }
  return out;
}

std::vector<BatchView> views_of(const std::vector<Batch>& batches, std::int64_t first, std::int64_t count) {
  std::vector<BatchView> v;
  for (std::int64_t i = first; i < first + count; ++i)
    v.push_back(test::view_of(batches[static_cast<std::size_t>(i)], false));
  return v;
}

Transformer<float> fresh_model() {
  Transformer<float> m(test::tiny_train_config(32));
  init_parameters(m.params(), 5, 0.3);
  return m;
}

struct TrainingRun {
  std::vector<double> losses;      // the step's mean loss, per step
  std::vector<float> first_grads;  // the summed gradients of step 1
  std::vector<float> params;       // after the last step
};

// kSteps steps over the world's ranks (sharded: ZeRO-1 moments).
TrainingRun distributed_run(bool sharded) {
  Communicator& comm = test::world();
  const int R = comm.size();
  Transformer<float> model = fresh_model();
  const std::size_t n = model.params().layout.total;
  OptimizerOptions oo;
  Optimizer optimizer(model.params().layout, oo, sharded ? shard_of(n, comm.rank(), R) : ParamRange{});
  TrainingRun run;
  for (std::int64_t s = 0; s < kSteps; ++s) {
    const std::vector<Batch> all = micro_batches(s, kPerRank * R);
    const std::vector<BatchView> every = views_of(all, 0, kPerRank * R);
    const std::vector<BatchView> mine = views_of(all, comm.rank() * kPerRank, kPerRank);
    const std::int64_t mean_over = count_scored_targets(every);
    LossResult r = step_gradients(model, mine, {}, mean_over);
    double loss = r.loss_sum;
    std::int64_t valid = r.n_valid;
    comm.sum(&loss, 1);
    comm.sum(&valid, 1);
    run.losses.push_back(loss / static_cast<double>(valid));
    float* g = model.grads().data();
    if (sharded) {
      reduce_scatter_sum(comm, g, n);
      const double norm = sharded_grad_norm(comm, g, n);
      optimizer.update(model.params(), model.grads(), 1e-3, clip_factor(norm, oo.grad_clip, 1.0));
      all_gather(comm, model.params().data.data(), n);
      if (s == 0) {
        all_gather(comm, g, n);  // only to compare whole gradients below
        run.first_grads.assign(g, g + n);
      }
    } else {
      sum_gradients(comm, g, n);
      if (s == 0) run.first_grads.assign(g, g + n);
      optimizer.step(model.params(), model.grads(), 1e-3);
    }
  }
  run.params.assign(model.params().data.data(), model.params().data.data() + n);
  return run;
}

// The same steps in one process, all micro-batches accumulated.
TrainingRun single_run() {
  const int R = test::world().size();
  Transformer<float> model = fresh_model();
  Optimizer optimizer(model.params().layout, OptimizerOptions{});
  TrainingRun run;
  for (std::int64_t s = 0; s < kSteps; ++s) {
    const std::vector<Batch> all = micro_batches(s, kPerRank * R);
    const StepResult r = train_step(model, optimizer, views_of(all, 0, kPerRank * R), 1e-3);
    run.losses.push_back(r.loss.mean());
    if (s == 0) {
      // train_step has updated the parameters: recompute the first step's gradients from the initial model.
      Transformer<float> first = fresh_model();
      step_gradients(first, views_of(all, 0, kPerRank * R));
      run.first_grads.assign(first.grads().data(), first.grads().data() + first.grads().size());
    }
  }
  const std::size_t n = model.params().layout.total;
  run.params.assign(model.params().data.data(), model.params().data.data() + n);
  return run;
}

TEST(DataParallel, RanksEqualOneProcessWithAccumulation) {
  const TrainingRun got = distributed_run(false), want = single_run();
  const ParamLayout layout = make_param_layout(test::tiny_train_config(32));
  test::expect_tensors_near(layout, got.first_grads.data(), want.first_grads.data(), 2e-5, 1e-4, "step 1 gradients");
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (std::size_t s = 0; s < got.losses.size(); ++s) EXPECT_NEAR(got.losses[s], want.losses[s], 1e-5 * want.losses[s]);
}

TEST(DataParallel, BitReproducibleAndShardedOptimizerIsBitIdentical) {
  const TrainingRun a = distributed_run(false), b = distributed_run(false), zero = distributed_run(true);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.losses, b.losses);
  // ZeRO-1 moves only where the moments live: the arithmetic, element for element, is the same.
  EXPECT_EQ(zero.first_grads, a.first_grads);
  EXPECT_EQ(zero.params, a.params);
  EXPECT_EQ(zero.losses, a.losses);
}

TEST(DataParallel, EveryRankHoldsTheSameParameters) {
  Communicator& comm = test::world();
  const TrainingRun a = distributed_run(true);
  // Rank 0's parameters, compared by every rank.
  std::vector<float> root = a.params;
  comm.broadcast(root.data(), root.size() * sizeof(float));
  EXPECT_EQ(a.params, root);
}

}  // namespace
}  // namespace zebra
