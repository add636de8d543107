// Each filter of the sampler against a distribution computed by hand, then sampling frequencies against the
// exact distribution, and seeded reproducibility.
#include "zebra/generate/sampler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace zebra {
namespace {

// Logits log(4), log(3), log(2), log(1): probabilities 0.4, 0.3, 0.2, 0.1 at temperature 1.
std::vector<float> four_logits() { return {std::log(4.0f), std::log(3.0f), std::log(2.0f), 0.0f}; }

// The logits are floats: each is rounded by 2^-24 relative (|logit| <= 1.4 here, so at most 1e-7 absolute),
// which changes a weight exp(l / T) by that over T relative; with T >= 0.5 and the sums of four such terms,
// probabilities agree with the exact values to a few 1e-7. 1e-6 leaves room for the exp/log of the library.
constexpr double kTol = 1e-6;

SamplerOptions plain_options() {
  SamplerOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.min_p = 0.0;
  return o;
}

void expect_distribution(std::vector<float> logits, const SamplerOptions& o, const std::vector<TokenProb>& want,
                         const std::vector<std::int32_t>& history = {}) {
  Sampler s(o);
  const std::vector<TokenProb> got = s.distribution(logits, history);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id) << "candidate " << i;
    EXPECT_NEAR(got[i].p, want[i].p, kTol) << "candidate " << i;
  }
}

TEST(Sampler, GreedyTakesTheArgmaxAndTiesGoToTheLowestId) {
  SamplerOptions o = greedy_sampling();
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
  Sampler s(o);
  EXPECT_EQ(s.sample(logits), 1);
  EXPECT_EQ(s.sample(logits), 1);  // no randomness
  expect_distribution(logits, o, {{1, 1.0}});
}

TEST(Sampler, TemperatureOneIsTheSoftmax) {
  expect_distribution(four_logits(), plain_options(), {{0, 0.4}, {1, 0.3}, {2, 0.2}, {3, 0.1}});
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  SamplerOptions o = plain_options();
  o.temperature = 0.5;  // weights w^2: 16, 9, 4, 1 over 30
  expect_distribution(four_logits(), o, {{0, 16.0 / 30}, {1, 9.0 / 30}, {2, 4.0 / 30}, {3, 1.0 / 30}});
  o.temperature = 2.0;  // weights sqrt(w)
  const double z = 2.0 + std::sqrt(3.0) + std::sqrt(2.0) + 1.0;
  expect_distribution(four_logits(), o, {{0, 2.0 / z}, {1, std::sqrt(3.0) / z}, {2, std::sqrt(2.0) / z}, {3, 1.0 / z}});
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  SamplerOptions o = plain_options();
  o.top_k = 2;
  expect_distribution(four_logits(), o, {{0, 4.0 / 7}, {1, 3.0 / 7}});
  o.top_k = 10;  // more than the vocabulary: off
  expect_distribution(four_logits(), o, {{0, 0.4}, {1, 0.3}, {2, 0.2}, {3, 0.1}});
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingTheMass) {
  SamplerOptions o = plain_options();
  o.top_p = 0.65;  // 0.4, 0.7 >= 0.65: two
  expect_distribution(four_logits(), o, {{0, 4.0 / 7}, {1, 3.0 / 7}});
  o.top_p = 0.75;  // 0.4, 0.7, 0.9: three
  expect_distribution(four_logits(), o, {{0, 4.0 / 9}, {1, 3.0 / 9}, {2, 2.0 / 9}});
  o.top_p = 0.1;  // never fewer than one
  expect_distribution(four_logits(), o, {{0, 1.0}});
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheBest) {
  SamplerOptions o = plain_options();
  o.min_p = 0.6;  // p >= 0.24: 0.4, 0.3
  expect_distribution(four_logits(), o, {{0, 4.0 / 7}, {1, 3.0 / 7}});
  o.min_p = 0.45;  // p >= 0.18: 0.4, 0.3, 0.2
  expect_distribution(four_logits(), o, {{0, 4.0 / 9}, {1, 3.0 / 9}, {2, 2.0 / 9}});
}

TEST(Sampler, FiltersApplyInLlamaCppOrderAndTemperatureLast) {
  // top-k 3 first renormalises to 4/9, 3/9, 2/9; top-p 0.75 then keeps two (0.444, 0.778), where on the
  // full distribution it would keep three (0.4, 0.7, 0.9). Temperature 2 last: weights sqrt(4), sqrt(3).
  SamplerOptions o = plain_options();
  o.top_k = 3;
  o.top_p = 0.75;
  o.temperature = 2.0;
  const double z = 2.0 + std::sqrt(3.0);
  expect_distribution(four_logits(), o, {{0, 2.0 / z}, {1, std::sqrt(3.0) / z}});
  // min-p looks at the temperature-1 probabilities too: 0.2 / 0.4 = 0.5 >= 0.45 keeps token 2 whatever T.
  o = plain_options();
  o.min_p = 0.45;
  o.temperature = 0.5;
  expect_distribution(four_logits(), o, {{0, 16.0 / 29}, {1, 9.0 / 29}, {2, 4.0 / 29}});
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions o = plain_options();
  o.repetition_penalty = 2.0;
  const std::vector<float> logits = {2.0f, 1.0f, -1.0f, 0.5f};
  // Tokens 0 and 2 seen (0 twice: penalised once): 2 -> 1, -1 -> -2.
  const std::vector<double> penalised = {1.0, 1.0, -2.0, 0.5};
  double z = 0.0;
  for (double l : penalised) z += std::exp(l);
  expect_distribution(logits, o,
                      {{0, std::exp(1.0) / z}, {1, std::exp(1.0) / z}, {3, std::exp(0.5) / z}, {2, std::exp(-2.0) / z}},
                      {0, 2, 0});
  // repeat_last_n = 1 looks at the last token only (2).
  o.repeat_last_n = 1;
  const std::vector<double> last_only = {2.0, 1.0, -2.0, 0.5};
  z = 0.0;
  for (double l : last_only) z += std::exp(l);
  expect_distribution(logits, o,
                      {{0, std::exp(2.0) / z}, {1, std::exp(1.0) / z}, {3, std::exp(0.5) / z}, {2, std::exp(-2.0) / z}},
                      {0, 2});
  // Greedy sees the penalised logits: 2 -> 1 ties with token 1, the lower id wins.
  o = greedy_sampling();
  o.repetition_penalty = 2.0;
  std::vector<float> l = logits;
  EXPECT_EQ(Sampler(o).sample(l, std::vector<std::int32_t>{0}), 0);
  l = logits;
  o.repetition_penalty = 2.5;  // 2 -> 0.8 < 1
  EXPECT_EQ(Sampler(o).sample(l, std::vector<std::int32_t>{0}), 1);
}

TEST(Sampler, SampleFrequenciesMatchTheDistribution) {
  SamplerOptions o = plain_options();
  o.temperature = 0.7;
  o.top_k = 3;
  o.seed = 11;
  std::vector<float> logits = four_logits();
  const std::vector<TokenProb> want = Sampler(o).distribution(logits);
  ASSERT_EQ(want.size(), 3u);
  Sampler s(o);
  const int n = 20000;
  std::map<std::int32_t, int> count;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = four_logits();
    ++count[s.sample(l)];
  }
  EXPECT_EQ(count.count(3), 0u);  // filtered out
  for (const TokenProb& t : want) {
    // Binomial: the count has standard deviation sqrt(n p (1 - p)); 5 sigma fails by chance 6e-7 of the time.
    const double sigma = std::sqrt(n * t.p * (1.0 - t.p));
    EXPECT_NEAR(count[t.id], n * t.p, 5.0 * sigma) << "token " << t.id;
  }
}

TEST(Sampler, SameSeedSameSequenceOtherSeedAnother) {
  auto run = [](std::uint64_t seed) {
    SamplerOptions o = plain_options();
    o.seed = seed;
    Sampler s(o);
    std::vector<std::int32_t> out;
    for (int i = 0; i < 64; ++i) {
      std::vector<float> l = four_logits();
      out.push_back(s.sample(l));
    }
    return out;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));  // 64 draws from four tokens: equal by chance with probability < 0.6^64
}

}  // namespace
}  // namespace zebra
