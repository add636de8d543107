// Many sequences in one InferenceSession (model/generator.hpp, model/kv_cache.hpp): batched decoding, forks.
//
// Batched rows go through each matrix product together, so a row's products may be blocked differently than
// in a one-sequence pass; attention runs per sequence on the same kernel. The results therefore equal separate
// sessions up to reordered sums: in double, chains of ~30 operations over sums of <= 40 O(1) terms (the
// argument of kv_cache_test.cpp) stay below ~1e-12; we allow 1e-9 abs + 1e-9 rel. A mistake that mixes
// sequences (a row attending to another sequence's cache, a wrong position) moves logits by ~1e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <vector>

#include "zebra/model/generator.hpp"
#include "zebra/model/params.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

constexpr LayerType G = LayerType::kGlobal;
constexpr LayerType L = LayerType::kLocal;

ParameterSet<double> make_params(PosEmbedding pos) {
  ModelConfig c;
  c.vocab_size = 11;
  c.d_model = 16;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 20;
  c.max_seq_len = 128;
  c.window = 4;
  c.layer_types = {G, L, L};
  c.pos_embedding = pos;
  c.resolve();
  ParameterSet<double> p(c);
  init_parameters(p, 5, 0.3);
  return p;
}

std::vector<std::int32_t> random_tokens(std::int64_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng.below(11));
  return t;
}

void expect_close(std::span<const double> a, std::span<const double> b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) / (1e-9 + 1e-9 * std::abs(b[i])));
  }
  EXPECT_LE(worst, 1.0) << what;
}

class Batched : public ::testing::TestWithParam<PosEmbedding> {};

TEST_P(Batched, SequencesOfDifferentLengthsDecodeAsSeparateSessions) {
  ScopedThreads single_thread(1);
  const ParameterSet<double> params = make_params(GetParam());
  // Prompt lengths 1, 3 (inside the window 4), 9 and 23 (past it: rings wrapped), then 6 decode steps each.
  const std::vector<std::int64_t> lengths = {1, 3, 9, 23};
  std::vector<std::vector<std::int32_t>> prompts, continuations;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    prompts.push_back(random_tokens(lengths[i], 100 + i));
    continuations.push_back(random_tokens(6, 200 + i));
  }
  InferenceSession<double> batch(params);
  std::vector<SeqId> ids = {batch.current()};
  for (std::size_t i = 1; i < lengths.size(); ++i) ids.push_back(batch.add_sequence());
  // The prompts in one pass too: rows of unequal segments together.
  std::vector<InferenceSession<double>::SequenceInput> in;
  for (std::size_t i = 0; i < ids.size(); ++i) in.push_back({ids[i], prompts[i]});
  batch.run(in);

  std::vector<std::vector<double>> step_logits(ids.size());
  for (std::size_t step = 0; step < 6; ++step) {
    in.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) in.push_back({ids[i], std::span(&continuations[i][step], 1)});
    const std::span<const double> out = batch.run(in);
    const auto v = static_cast<std::size_t>(params.config.vocab_size);
    ASSERT_EQ(out.size(), ids.size() * v);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      step_logits[i].insert(step_logits[i].end(), out.begin() + static_cast<std::ptrdiff_t>(i * v),
                            out.begin() + static_cast<std::ptrdiff_t>((i + 1) * v));
      expect_close(batch.logits_of(ids[i]), out.subspan(i * v, v), "logits_of equals run's row");
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "sequence " << i << " (prompt " << lengths[i] << ")");
    InferenceSession<double> alone(params);
    alone.prefill(prompts[i]);
    std::vector<double> ref;
    for (std::int32_t t : continuations[i]) {
      const std::span<const double> l = alone.decode(t);
      ref.insert(ref.end(), l.begin(), l.end());
    }
    expect_close(step_logits[i], ref, "batched vs alone");
    batch.select(ids[i]);
    EXPECT_EQ(batch.n_past(), lengths[i] + 6);
  }
}

TEST_P(Batched, ForkedBranchesEqualEachBranchFromScratch) {
  ScopedThreads single_thread(1);
  const ParameterSet<double> params = make_params(GetParam());
  const auto prompt = random_tokens(13, 7);  // past the window: the rings have wrapped when the fork is taken
  const auto branch_a = random_tokens(9, 8), branch_b = random_tokens(5, 9);
  InferenceSession<double> s(params);
  s.prefill(prompt);
  const SeqId a = s.current();
  const SeqId b = s.fork_sequence(a);
  EXPECT_EQ(s.tokens(), prompt);
  // Extend b first (it copies the shared global buffer), then a, token by token, interleaved.
  std::vector<double> got_a, got_b;
  for (std::size_t i = 0; i < std::max(branch_a.size(), branch_b.size()); ++i) {
    if (i < branch_b.size()) {
      s.select(b);
      const auto l = s.decode(branch_b[i]);
      got_b.assign(l.begin(), l.end());
    }
    if (i < branch_a.size()) {
      s.select(a);
      const auto l = s.decode(branch_a[i]);
      got_a.assign(l.begin(), l.end());
    }
  }
  for (const auto& [branch, got] : {std::pair{&branch_a, &got_a}, std::pair{&branch_b, &got_b}}) {
    std::vector<std::int32_t> all = prompt;
    all.insert(all.end(), branch->begin(), branch->end());
    InferenceSession<double> scratch(params);
    const auto ref = scratch.prefill(all, 3);
    expect_close(*got, ref, "fork vs from scratch");
  }
  s.select(a);
  s.remove_sequence(b);
  EXPECT_THROW(s.remove_sequence(a), Error);  // the current sequence
  EXPECT_THROW(s.select(b), Error);
}

INSTANTIATE_TEST_SUITE_P(Positions, Batched,
                         ::testing::Values(PosEmbedding::kRope, PosEmbedding::kAlibi, PosEmbedding::kLearned),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Batched, ForkSharesGlobalBuffersUntilExtended) {
  const ParameterSet<double> params = make_params(PosEmbedding::kRope);
  InferenceSession<double> s(params);
  s.prefill(random_tokens(20, 1));
  const std::size_t one = s.kv_cache().bytes_allocated();
  const SeqId f = s.fork_sequence(s.current());
  // Only the two local rings (4 rows x kv_dim 8, keys and values) were copied.
  const std::size_t ring_bytes = 2 * 2 * 4 * 8 * sizeof(double);
  EXPECT_EQ(s.kv_cache().bytes_allocated(), one + ring_bytes);
  s.select(f);
  s.decode(3);  // copy on extend: the fork's global layer gets its own buffer
  EXPECT_GT(s.kv_cache().bytes_allocated(), one + ring_bytes);
  EXPECT_THROW(s.run({}), Error);
  const std::vector<std::int32_t> t = {1};
  std::vector<InferenceSession<double>::SequenceInput> twice = {{f, t}, {f, t}};
  EXPECT_THROW(s.run(twice), Error);
}

}  // namespace
}  // namespace zebra
