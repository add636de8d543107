// Strided perplexity and the loss-against-position curve (eval/perplexity.hpp, eval/position_curve.hpp):
// known losses from a uniform model, stride == ctx against the non-overlapping scheme, the strided scored set
// against a direct computation, and the bucket arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "eval/tiny_model.hpp"
#include "zebra/eval/perplexity.hpp"
#include "zebra/eval/position_curve.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

constexpr std::int64_t kVocab = test::kTinyVocab;
using test::random_tokens;
ModelConfig small_config() { return test::tiny_eval_config(); }

// A zero lm head makes every logit 0, so every scored token costs exactly ln V, at every window position, for
// every ctx and in both schemes; the counts follow from the window arithmetic alone.
TEST(PerplexityStrided, UniformModelCostsLnVocabEverywhere) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 3);
  std::fill(model.params().views.lm_head, model.params().views.lm_head + kVocab * 16, 0.0f);
  const auto tokens = random_tokens(300, kVocab, 1);
  const double ln_v = std::log(static_cast<double>(kVocab));
  for (std::int64_t ctx : {std::int64_t{16}, std::int64_t{40}}) {
    for (std::int64_t stride : {std::int64_t{0}, std::int64_t{1}, std::int64_t{7}, ctx}) {
      PerplexityOptions o;
      o.ctx = ctx;
      o.stride = stride;
      const PerplexityResult r = evaluate_perplexity(model, tokens, o);
      const std::int64_t step = stride > 0 ? stride : ctx;
      const std::int64_t windows = stride > 0 ? (300 - ctx) / stride + 1 : 300 / ctx;
      const std::int64_t later = stride > 0 ? std::min(stride, ctx - 1) : ctx - 1;
      EXPECT_EQ(r.n_windows, windows) << "ctx " << ctx << " stride " << stride;
      EXPECT_EQ(r.n_scored, (ctx - 1) + (windows - 1) * later) << "ctx " << ctx << " stride " << stride;
      EXPECT_EQ(r.n_tokens, (windows - 1) * step + ctx);
      EXPECT_EQ(r.n_forward, windows * ctx);
      EXPECT_NEAR(r.mean_loss(), ln_v, 1e-6) << "ctx " << ctx << " stride " << stride;
      ASSERT_EQ(r.position_count.size(), static_cast<std::size_t>(ctx));
      EXPECT_EQ(r.position_count[0], 0);
      for (std::int64_t p = 1; p < ctx; ++p) {
        const auto i = static_cast<std::size_t>(p);
        // Position p is scored in the first window always, and in later ones when it is among the last S.
        const std::int64_t expect = 1 + (windows - 1) * (p >= ctx - later ? 1 : 0);
        ASSERT_EQ(r.position_count[i], expect) << "ctx " << ctx << " stride " << stride << " position " << p;
        EXPECT_NEAR(r.position_loss_sum[i] / static_cast<double>(r.position_count[i]), ln_v, 1e-6);
      }
      for (const PositionBucket& b :
           bucket_position_losses(r.position_loss_sum, r.position_count, 4, PositionScale::kGeometric)) {
        EXPECT_NEAR(b.mean_loss(), ln_v, 1e-6);
      }
    }
  }
}

// stride == ctx scores every window's ctx - 1 predictions: the non-overlapping scheme, bit for bit.
TEST(PerplexityStrided, StrideEqualToCtxIsNonOverlapping) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 9, 0.3);
  const auto tokens = random_tokens(250, kVocab, 2);
  PerplexityOptions o;
  o.ctx = 48;
  o.bos_first = true;
  const PerplexityResult plain = evaluate_perplexity(model, tokens, o);
  o.stride = 48;
  const PerplexityResult strided = evaluate_perplexity(model, tokens, o);
  EXPECT_EQ(strided.n_windows, plain.n_windows);
  EXPECT_EQ(strided.n_scored, plain.n_scored);
  EXPECT_EQ(strided.n_tokens, plain.n_tokens);
  EXPECT_EQ(strided.loss_sum, plain.loss_sum);
  EXPECT_EQ(strided.window_loss, plain.window_loss);
  EXPECT_EQ(strided.position_loss_sum, plain.position_loss_sum);
  EXPECT_GT(plain.mean_loss(), 0.5);  // a random model: far from zero loss
}

// The strided scored set computed by hand: window w starts at w S; the first window scores positions 0 .. ctx-2,
// later ones ctx-1-S .. ctx-2; log-softmax in double from the model's own logits.
TEST(PerplexityStrided, MatchesDirectComputation) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 5, 0.3);
  const auto tokens = random_tokens(140, kVocab, 4);
  const std::int64_t ctx = 40, stride = 15;
  PerplexityOptions o;
  o.ctx = ctx;
  o.stride = stride;
  const PerplexityResult r = evaluate_perplexity(model, tokens, o);
  double sum = 0.0;
  std::int64_t count = 0;
  std::vector<double> per_position(static_cast<std::size_t>(ctx), 0.0);
  std::vector<float> logits(kVocab);
  const std::int64_t windows = (140 - ctx) / stride + 1;  // 7
  for (std::int64_t w = 0; w < windows; ++w) {
    std::vector<std::int32_t> in(tokens.begin() + w * stride, tokens.begin() + w * stride + ctx);
    model.forward_hidden(BatchView{1, ctx, in.data(), nullptr, nullptr});
    for (std::int64_t j = w == 0 ? 0 : ctx - 1 - stride; j < ctx - 1; ++j) {
      model.logits_for_row(j, logits.data());
      double mx = -1e300, z = 0.0;
      for (float x : logits) mx = std::max(mx, static_cast<double>(x));
      for (float x : logits) z += std::exp(static_cast<double>(x) - mx);
      const double l = mx + std::log(z) - static_cast<double>(logits[static_cast<std::size_t>(in[j + 1])]);
      sum += l;
      per_position[static_cast<std::size_t>(j + 1)] += l;
      ++count;
    }
  }
  EXPECT_EQ(r.n_windows, windows);
  EXPECT_EQ(count, 139 - (140 - ((windows - 1) * stride + ctx)));  // every covered token after the first, once
  EXPECT_EQ(r.n_scored, count);
  EXPECT_NEAR(r.loss_sum, sum, 1e-5 * sum);
  for (std::size_t p = 1; p < per_position.size(); ++p) {
    EXPECT_NEAR(r.position_loss_sum[p], per_position[p], 1e-5 * std::max(1.0, per_position[p])) << "position " << p;
  }
}

// The buckets of a real (non-uniform) run: counts add up to the scored tokens, and the count-weighted mean of
// the bucket means is the overall mean; a flat average of the bucket means would not be (unequal counts).
TEST(PerplexityStrided, BucketsAverageBackToTheMean) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 7, 0.5);
  const auto tokens = random_tokens(200, kVocab, 6);
  PerplexityOptions o;
  o.ctx = 64;
  o.stride = 24;
  const PerplexityResult r = evaluate_perplexity(model, tokens, o);
  for (PositionScale scale : {PositionScale::kGeometric, PositionScale::kLinear}) {
    const auto buckets = bucket_position_losses(r.position_loss_sum, r.position_count, 6, scale);
    ASSERT_GE(buckets.size(), 2u);  // several buckets, or the weighting is not tested
    std::int64_t n = 0;
    double weighted = 0.0;
    for (const PositionBucket& b : buckets) {
      n += b.count;
      weighted += static_cast<double>(b.count) * b.mean_loss();
    }
    EXPECT_EQ(n, r.n_scored);
    EXPECT_NEAR(weighted / static_cast<double>(n), r.mean_loss(), 1e-12);
  }
}

TEST(PositionCurve, BucketEdges) {
  auto ranges = [](const std::vector<PositionBucket>& b) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& x : b) out.emplace_back(x.first, x.last);
    return out;
  };
  using R = std::vector<std::pair<std::int64_t, std::int64_t>>;
  // Geometric: edges round(17^(k/4)) = 1, 2, 4, 8, then 17.
  EXPECT_EQ(ranges(position_buckets(17, 4, PositionScale::kGeometric)), (R{{1, 1}, {2, 3}, {4, 7}, {8, 16}}));
  // Linear: edges 1 + k * 16 / 4.
  EXPECT_EQ(ranges(position_buckets(17, 4, PositionScale::kLinear)), (R{{1, 4}, {5, 8}, {9, 12}, {13, 16}}));
  // More buckets than positions: one position each.
  EXPECT_EQ(ranges(position_buckets(4, 16, PositionScale::kGeometric)), (R{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_EQ(ranges(position_buckets(4, 16, PositionScale::kLinear)), (R{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_EQ(ranges(position_buckets(2048, 1, PositionScale::kGeometric)), (R{{1, 2047}}));
  // 16 geometric buckets over 2048: contiguous, ending at 2047, the first ones narrow.
  const auto g = position_buckets(2048, 16, PositionScale::kGeometric);
  ASSERT_EQ(g.size(), 16u);
  EXPECT_EQ(g.front().first, 1);
  EXPECT_EQ(g.back().last, 2047);
  for (std::size_t k = 1; k < g.size(); ++k) EXPECT_EQ(g[k].first, g[k - 1].last + 1);
  EXPECT_DOUBLE_EQ((PositionBucket{4, 16, 0, 0.0}).center(PositionScale::kGeometric), 8.0);
  EXPECT_DOUBLE_EQ((PositionBucket{4, 16, 0, 0.0}).center(PositionScale::kLinear), 10.0);
  EXPECT_THROW(position_buckets(1, 4, PositionScale::kLinear), Error);
  EXPECT_THROW(position_buckets(16, 0, PositionScale::kLinear), Error);
  EXPECT_THROW(parse_position_scale("log"), Error);
}

TEST(PerplexityStrided, RefusesBadOptions) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  const auto tokens = random_tokens(100, kVocab, 3);
  PerplexityOptions o;
  o.ctx = 32;
  o.stride = 33;  // a stride past the window would skip tokens
  EXPECT_THROW(evaluate_perplexity(model, tokens, o), Error);
  o.stride = 8;
  o.score_from = 4;  // the stride decides what is scored
  EXPECT_THROW(evaluate_perplexity(model, tokens, o), Error);
  o.score_from = 0;
  o.stride = -1;
  EXPECT_THROW(evaluate_perplexity(model, tokens, o), Error);
}

}  // namespace
}  // namespace zebra
