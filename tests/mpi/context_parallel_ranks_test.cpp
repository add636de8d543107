// Context parallelism (train/context_parallel.hpp) on 2 and 3 ranks: one step over sequences split by position
// gives the loss and every gradient of the same step in one process, which every rank computes itself.
//
// Tolerances. In double (u = 1.1e-16) the two computations differ only in the order of their sums: the
// log-sum-exp merge of a global layer's blocks against one online softmax, the per-rank sums of the parameter
// gradients (over S rows, then over ranks) against one sum over T rows. Each reordering perturbs a sum by at most
// ~ n u of its terms' magnitude, n <= T = 72 terms, and the chain of 4 layers, norms and the loss multiplies that
// by a modest constant: ~1e-13 of a tensor's scale (measured: ~4e-15). atol = 1e-12 of the scale leaves an order of
// margin and sits nine orders below the error of a real mistake (a missing halo row, a block merged with the wrong
// weight, a gradient left with the wrong rank moves gradients by 1e-3 of the scale or more). In float (u = 6e-8) the
// same argument gives ~1e-5 of the scale (measured: ~1.5e-6); atol = 2e-5 with rtol = 1e-4.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "mpi/mpi_test_util.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/train/context_parallel.hpp"
#include "zebra/train/step.hpp"

namespace zebra {
namespace {

constexpr std::int64_t kSlice = 24;  // positions per rank
constexpr std::int64_t kBatch = 2;

struct CpCase {
  std::string name;
  std::int64_t window;  // of the local layers
  std::vector<LayerType> layers;
  PosEmbedding pos = PosEmbedding::kRope;
  std::int64_t n_kv_heads = 2;  // of 4 query heads: GQA
  bool docs = false;
};

ModelConfig config_of(const CpCase& c, std::int64_t seq_len) {
  ModelConfig m;
  m.vocab_size = 32;
  m.d_model = 16;
  m.n_layers = static_cast<std::int64_t>(c.layers.size());
  m.n_heads = 4;
  m.n_kv_heads = c.n_kv_heads;
  m.head_dim = 8;
  m.ffn_dim = 32;
  m.max_seq_len = seq_len;
  m.window = c.window;
  m.layer_types = c.layers;
  m.pos_embedding = c.pos;
  m.resolve();
  return m;
}

std::vector<CpCase> cases() {
  const LayerType G = LayerType::kGlobal, L = LayerType::kLocal;
  const std::vector<LayerType> zebra = {G, L, L, G, L};  // a mixed pattern: global, two local, global, local
  return {
      {"window < slice", kSlice / 2, zebra},
      {"window = slice", kSlice, zebra},
      {"window = slice + 1", kSlice + 1, zebra},
      {"window > 2 slices", 2 * kSlice + 5, zebra},
      {"window 1, all local", 1, {L, L}},
      {"all global, documents", 4, {G, G}, PosEmbedding::kRope, 1, true},
      {"alibi, documents, MHA", 9, {L, G, L}, PosEmbedding::kAlibi, 4, true},
      {"learned positions", 7, {G, L}, PosEmbedding::kLearned},
  };
}

template <typename T>
struct StepResult {
  double loss_sum = 0;
  std::int64_t n_valid = 0;
  std::vector<T> grads;
};

// The step of one process over the whole batch.
template <typename T>
StepResult<T> whole_step(const ParameterSet<T>& params, const Batch& batch, bool docs) {
  Transformer<T> model{ParameterSet<T>(params)};
  model.zero_grads();
  const LossResult r = model.forward_backward(test::view_of(batch, docs));
  return {r.loss_sum, r.n_valid, std::vector<T>(model.grads().data(), model.grads().data() + model.grads().size())};
}

// The step split across the world's ranks; every rank returns the summed result and checks its traffic.
template <typename T>
StepResult<T> split_step(const ParameterSet<T>& params, const Batch& batch, bool docs, const ModelConfig& config) {
  Communicator& comm = test::world();
  Transformer<T> model{ParameterSet<T>(params)};
  ContextParallelAttention<T> attention(comm, config.n_layers);
  model.set_sharded_attention(&attention);
  Batch slice;
  const BatchView view = slice_columns(batch, comm.rank(), comm.size(), docs, slice);
  const BatchView whole_view = test::view_of(batch, docs);
  const std::int64_t mean_over = count_scored_targets(std::span<const BatchView>(&whole_view, 1));
  model.zero_grads();
  const LossResult r = model.forward_backward(view, 1.0, mean_over);
  StepResult<T> out;
  double loss = r.loss_sum;
  std::int64_t n = r.n_valid;
  comm.sum(&loss, 1);
  comm.sum(&n, 1);
  out.loss_sum = loss;
  out.n_valid = n;
  std::vector<double> g(model.grads().data(), model.grads().data() + model.grads().size());
  comm.sum(g.data(), g.size());
  out.grads.assign(g.begin(), g.end());
  // The bytes of every layer, forward and backward, are those of the formula.
  for (std::int64_t l = 0; l < config.n_layers; ++l) {
    const LayerTraffic want = context_parallel_traffic(config.layer_window(l), comm.rank(), comm.size(), view.seq_len,
                                                       batch.batch_size, config.kv_dim(), sizeof(T));
    EXPECT_EQ(attention.traffic()[static_cast<std::size_t>(l)].forward_bytes, want.forward_bytes) << "layer " << l;
    EXPECT_EQ(attention.traffic()[static_cast<std::size_t>(l)].backward_bytes, want.backward_bytes) << "layer " << l;
  }
  return out;
}

template <typename T>
void check_case(const CpCase& c, double atol, double rtol) {
  const std::int64_t T_full = kSlice * test::world().size();
  const ModelConfig config = config_of(c, T_full);
  ParameterSet<T> params(config);
  init_parameters(params, 11, 0.3);  // a large init: per-token gradients differ a lot, so a lost one shows
  const Batch batch = test::random_batch(kBatch, T_full, config.vocab_size, 5, c.docs);
  const StepResult<T> want = whole_step(params, batch, c.docs);
  const StepResult<T> got = split_step(params, batch, c.docs, config);
  EXPECT_EQ(got.n_valid, want.n_valid);
  EXPECT_NEAR(got.loss_sum, want.loss_sum, (atol + rtol) * std::fabs(want.loss_sum));
  const double worst =
      test::expect_tensors_near(params.layout, got.grads.data(), want.grads.data(), atol, rtol, c.name);
  if (test::world().rank() == 0) std::printf("%s: worst error / tolerance %.3g\n", c.name.c_str(), worst);
}

TEST(ContextParallel, DoubleStepEqualsTheWholeSequenceStep) {
  for (const CpCase& c : cases()) {
    SCOPED_TRACE(c.name);
    check_case<double>(c, 1e-12, 1e-12);
  }
}

TEST(ContextParallel, FloatStepEqualsTheWholeSequenceStep) {
  for (const CpCase& c : cases()) {
    SCOPED_TRACE(c.name);
    check_case<float>(c, 2e-5, 1e-4);
  }
}

// The formula itself, by hand for a window inside one slice: a local layer sends its last window - 1 rows (keys
// and values of every sequence) to the next rank, and backward that again plus its own halo's gradients; a global
// layer's rank r forwards r + 1 blocks.
TEST(ContextParallel, TrafficFormulaByHand) {
  const std::int64_t S = 24, B = 2, kv = 16, e = 4, row = 2 * B * kv * e;
  for (int R : {2, 3}) {
    for (int r = 0; r < R; ++r) {
      const LayerTraffic local = context_parallel_traffic(10, r, R, S, B, kv, e);
      EXPECT_EQ(local.forward_bytes, r + 1 < R ? 9 * row : 0);
      EXPECT_EQ(local.backward_bytes, (r + 1 < R ? 9 * row : 0) + (r > 0 ? 9 * row : 0));
      const LayerTraffic global = context_parallel_traffic(kGlobalWindow, r, R, S, B, kv, e);
      EXPECT_EQ(global.forward_bytes, r + 1 < R ? (r + 1) * S * row : 0);
      EXPECT_EQ(global.backward_bytes, r + 1 < R ? 2 * (r + 1) * S * row : (R - 1) * S * row);
    }
  }
  // A window reaching two slices back (halo 28 > S): rank 0 of 3 gives rank 1 all its 24 rows and rank 2 its
  // last 4.
  EXPECT_EQ(context_parallel_traffic(29, 0, 3, S, B, kv, e).forward_bytes, (24 + 4) * row);
}

}  // namespace
}  // namespace zebra
