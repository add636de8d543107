// Whole-model gradient checks (central finite differences in double precision) and the
// layer-pattern invariants of DESIGN.md §6.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "zebra/model/transformer.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

// Tiny config: GQA (4 query heads over 2 KV heads), a mixed pattern G L L with window 2, head_dim 4.
ModelConfig tiny_config(PosEmbedding pos) {
  ModelConfig c;
  c.vocab_size = 11;
  c.d_model = 8;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 12;
  c.max_seq_len = 16;
  c.window = 2;
  c.layer_types = {LayerType::kGlobal, LayerType::kLocal, LayerType::kLocal};
  c.pos_embedding = pos;
  c.tie_embeddings = pos != PosEmbedding::kNone;  // exercise both the tied and the untied head
  c.resolve();
  return c;
}

struct TokenBatch {
  std::int64_t b, t;
  std::vector<std::int32_t> tokens, targets, doc_start;
  BatchView view(bool doc_mask = true) const {
    return BatchView{b, t, tokens.data(), targets.data(), doc_mask ? doc_start.data() : nullptr};
  }
};

// Two rows of length t; row 1 holds two documents (a boundary at position 3); a few ignored targets.
TokenBatch make_batch(std::int64_t vocab, std::int64_t t, std::uint64_t seed) {
  TokenBatch tb{2, t, {}, {}, {}};
  Rng rng(seed);
  for (std::int64_t r = 0; r < 2; ++r) {
    for (std::int64_t i = 0; i < t; ++i) {
      tb.tokens.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab))));
      tb.targets.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab))));
      tb.doc_start.push_back(r == 1 && i >= 3 ? 3 : 0);
    }
  }
  tb.targets[1] = -1;
  tb.targets[static_cast<std::size_t>(t + 4)] = -1;
  return tb;
}

class GradientCheck : public ::testing::TestWithParam<PosEmbedding> {};

// Loss = mean cross-entropy. Central differences with step h have truncation error h^2/6 |L'''| and
// rounding error ~ eps * |L| / h. With h = 1e-5, |L| ~ 3 and third derivatives of order 10 (weights of
// std 0.3 through three layers), these are ~2e-10 and ~3e-11, so |fd - analytic| <= 1e-8 + 1e-6 |g|
// leaves a wide margin while still catching any wrong term (a missing term is >= 1e-4 here).
TEST_P(GradientCheck, WholeModelMatchesFiniteDifferences) {
  const ModelConfig c = tiny_config(GetParam());
  Transformer<double> model(c, RunOptions{false, 3});  // loss chunk 3: chunks cross batch rows
  init_parameters(model.params(), 7, 0.3);
  const TokenBatch tb = make_batch(c.vocab_size, 7, 11);
  const BatchView batch = tb.view();

  model.zero_grads();
  const double loss = model.forward_backward(batch).mean();
  ASSERT_TRUE(std::isfinite(loss));
  std::vector<double> analytic(model.grads().begin(), model.grads().end());

  double* p = model.params().data.data();
  const double h = 1e-5;
  double max_err = 0.0, max_grad = 0.0;
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double up = model.forward_loss(batch).mean();
    p[i] = saved - h;
    const double down = model.forward_loss(batch).mean();
    p[i] = saved;
    const double fd = (up - down) / (2 * h);
    max_err = std::max(max_err, std::abs(fd - analytic[i]));
    max_grad = std::max(max_grad, std::abs(analytic[i]));
    ASSERT_NEAR(analytic[i], fd, 1e-8 + 1e-6 * std::abs(fd)) << "parameter index " << i;
  }
  EXPECT_GT(max_grad, 1e-3);  // the check is not vacuous
}

INSTANTIATE_TEST_SUITE_P(Positions, GradientCheck,
                         ::testing::Values(PosEmbedding::kRope, PosEmbedding::kAlibi, PosEmbedding::kLearned,
                                           PosEmbedding::kNone),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// Recomputation in backward replays the same arithmetic, so gradients are bit-identical.
TEST(Transformer, RecomputeGivesIdenticalGradients) {
  ModelConfig c = tiny_config(PosEmbedding::kRope);
  Transformer<float> a(c, RunOptions{false, 5});
  Transformer<float> b(c, RunOptions{true, 5});
  init_parameters(a.params(), 3);
  init_parameters(b.params(), 3);
  const TokenBatch tb = make_batch(c.vocab_size, 9, 5);
  a.zero_grads();
  b.zero_grads();
  EXPECT_EQ(a.forward_backward(tb.view()).loss_sum, b.forward_backward(tb.view()).loss_sum);
  ASSERT_EQ(a.grads().size(), b.grads().size());
  EXPECT_EQ(0, std::memcmp(a.grads().data(), b.grads().data(), a.grads().size() * sizeof(float)));
}

TEST(Transformer, DeterministicAcrossRuns) {
  ModelConfig c = tiny_config(PosEmbedding::kRope);
  Transformer<float> m(c);
  init_parameters(m.params(), 3);
  const TokenBatch tb = make_batch(c.vocab_size, 9, 5);
  m.zero_grads();
  const double l1 = m.forward_backward(tb.view()).loss_sum;
  std::vector<float> g1(m.grads().begin(), m.grads().end());
  m.zero_grads();
  const double l2 = m.forward_backward(tb.view()).loss_sum;
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(0, std::memcmp(g1.data(), m.grads().data(), g1.size() * sizeof(float)));
}

// Loss chunking changes which rows share a GEMM, not the arithmetic per row: equal losses, and
// gradients equal up to the order of the lm-head gradient sums.
TEST(Transformer, LossChunkSizeDoesNotChangeTheLoss) {
  ModelConfig c = tiny_config(PosEmbedding::kRope);
  Transformer<double> a(c, RunOptions{false, 1});
  Transformer<double> b(c, RunOptions{false, 1000});
  init_parameters(a.params(), 3, 0.3);
  init_parameters(b.params(), 3, 0.3);
  const TokenBatch tb = make_batch(c.vocab_size, 9, 5);
  EXPECT_NEAR(a.forward_backward(tb.view()).loss_sum, b.forward_backward(tb.view()).loss_sum, 1e-12);
  for (std::size_t i = 0; i < a.grads().size(); ++i) ASSERT_NEAR(a.grads()[i], b.grads()[i], 1e-12);
}

// A local layer whose window covers the whole sequence is a global layer.
TEST(Transformer, LocalLayerWithWindowAtLeastTEqualsGlobal) {
  for (std::int64_t window : {9, 10, 1000}) {
    ModelConfig local = tiny_config(PosEmbedding::kRope);
    local.window = window;
    ModelConfig global = local.full_attention_twin();
    Transformer<float> a(local), b(global);
    init_parameters(a.params(), 4);
    init_parameters(b.params(), 4);
    const TokenBatch tb = make_batch(local.vocab_size, 9, 6);
    EXPECT_EQ(a.forward_backward(tb.view(false)).loss_sum, b.forward_backward(tb.view(false)).loss_sum);
    EXPECT_EQ(0, std::memcmp(a.grads().data(), b.grads().data(), a.grads().size() * sizeof(float)));
  }
}

TEST(Transformer, GroupSizeOneMakesEveryLayerGlobal) {
  ModelConfig c;
  c.n_layers = 5;
  c.group_size = 1;
  c.window = 3;
  c.resolve();
  EXPECT_EQ(c.pattern_string(), "GGGGG");
  for (std::int64_t l = 0; l < c.n_layers; ++l) EXPECT_EQ(c.layer_window(l), kGlobalWindow);
}

// A global layer's attention does not read the window: layer 0's output is the same for any window,
// while the local layers after it do change.
TEST(Transformer, WindowChangesNoGlobalLayer) {
  ModelConfig w2 = tiny_config(PosEmbedding::kRope);
  ModelConfig w4 = w2;
  w4.window = 4;
  Transformer<float> a(w2), b(w4);
  init_parameters(a.params(), 8);
  init_parameters(b.params(), 8);
  const TokenBatch tb = make_batch(w2.vocab_size, 9, 6);
  a.forward_hidden(tb.view(false));
  b.forward_hidden(tb.view(false));
  const std::size_t bytes = static_cast<std::size_t>(2 * 9 * w2.d_model) * sizeof(float);
  EXPECT_EQ(0, std::memcmp(a.residual(1), b.residual(1), bytes));  // after the global layer 0
  EXPECT_NE(0, std::memcmp(a.residual(2), b.residual(2), bytes));  // after local layer 1
}

// With the document mask, tokens of one document never influence another's outputs.
TEST(Transformer, DocumentMaskStopsAttentionAcrossDocuments) {
  for (PosEmbedding pos : {PosEmbedding::kRope, PosEmbedding::kAlibi, PosEmbedding::kLearned}) {
    ModelConfig c = tiny_config(pos);
    c.layer_types = {LayerType::kGlobal, LayerType::kGlobal, LayerType::kLocal};
    c.window = 5;
    Transformer<double> m(c);
    init_parameters(m.params(), 9, 0.3);
    TokenBatch tb = make_batch(c.vocab_size, 9, 2);
    // row 1: document A = positions 0..2, document B = 3..8
    m.forward_hidden(tb.view(true));
    std::vector<double> before(m.final_hidden(), m.final_hidden() + 2 * 9 * c.d_model);
    tb.tokens[9 + 0] = (tb.tokens[9 + 0] + 1) % 11;  // change document A
    tb.tokens[9 + 2] = (tb.tokens[9 + 2] + 5) % 11;
    m.forward_hidden(tb.view(true));
    const double* after = m.final_hidden();
    const std::int64_t d = c.d_model;
    for (std::int64_t i = 3; i < 9; ++i)
      for (std::int64_t k = 0; k < d; ++k)
        ASSERT_EQ(before[static_cast<std::size_t>((9 + i) * d + k)], after[(9 + i) * d + k]) << "position " << i;
    bool a_changed = false;
    for (std::int64_t k = 0; k < 3 * d; ++k)
      a_changed |= before[static_cast<std::size_t>(9 * d + k)] != after[9 * d + k];
    EXPECT_TRUE(a_changed);
    // Without the mask the change does reach document B.
    m.forward_hidden(tb.view(false));
    std::vector<double> unmasked(m.final_hidden(), m.final_hidden() + 2 * 9 * d);
    tb.tokens[9 + 0] = (tb.tokens[9 + 0] + 3) % 11;
    m.forward_hidden(tb.view(false));
    bool b_changed = false;
    for (std::int64_t k = 3 * d; k < 9 * d; ++k)
      b_changed |= unmasked[static_cast<std::size_t>(9 * d + k)] != m.final_hidden()[9 * d + k];
    EXPECT_TRUE(b_changed);
  }
}

// RoPE and ALiBi see only relative positions: a document packed after another one (with the mask)
// gives the same outputs as the document alone, up to rounding of the rotated products.
TEST(Transformer, PackedDocumentMatchesDocumentAloneWithRelativePositions) {
  for (PosEmbedding pos : {PosEmbedding::kRope, PosEmbedding::kAlibi}) {
    ModelConfig c = tiny_config(pos);
    Transformer<double> m(c);
    init_parameters(m.params(), 10, 0.3);
    std::vector<std::int32_t> packed = {1, 5, 7, 3, 9, 2, 4, 6, 8}, starts = {0, 0, 0, 3, 3, 3, 3, 3, 3};
    std::vector<std::int32_t> alone(packed.begin() + 3, packed.end());
    m.forward_hidden(BatchView{1, 9, packed.data(), nullptr, starts.data()});
    std::vector<double> p(m.final_hidden() + 3 * c.d_model, m.final_hidden() + 9 * c.d_model);
    m.forward_hidden(BatchView{1, 6, alone.data(), nullptr, nullptr});
    for (std::size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(p[i], m.final_hidden()[i], 1e-12) << i;
  }
}

TEST(Transformer, RejectsBadBatches) {
  ModelConfig c = tiny_config(PosEmbedding::kLearned);
  Transformer<float> m(c);
  std::vector<std::int32_t> tokens(20, 1), targets(20, 1);
  EXPECT_THROW(m.forward_loss(BatchView{1, 20, tokens.data(), targets.data(), nullptr}), Error);  // > max_seq_len
  tokens[3] = 11;
  EXPECT_THROW(m.forward_loss(BatchView{1, 5, tokens.data(), targets.data(), nullptr}), Error);  // token >= vocab
  tokens[3] = 1;
  targets[2] = 11;
  EXPECT_THROW(m.forward_loss(BatchView{1, 5, tokens.data(), targets.data(), nullptr}), Error);  // target >= vocab
}

}  // namespace
}  // namespace zebra
