// The LCAT mixture (data/mixture_batcher.hpp): the stated share of short micro-batches, their shape, the same
// tokens per micro-batch for both kinds, and a state that resumes the same draws.
#include "zebra/data/mixture_batcher.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "io/io_test_util.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;

TokenDataset make_dataset(const std::string& path) {
  TokenDatasetWriter w(path, 1000, 1, 2);
  for (int doc = 0; doc < 30; ++doc) {
    std::vector<std::int32_t> ids;
    for (int k = 0; k < 40 + doc * 5; ++k) ids.push_back(3 + (doc * 31 + k * 7) % 997);
    w.add_document(ids);
  }
  w.finish();
  return TokenDataset::open(path);
}

// n draws with P(short) = p: the count of short ones is Binomial(n, p), sd sqrt(n p (1 - p)). The seed is fixed,
// so the check is deterministic; 5 sd (a chance of 6e-7 for a fair generator) bounds it without tuning.
TEST(MixtureBatcher, DrawsTheStatedShareOfShortSequences) {
  TempDir dir;
  const TokenDataset ds = make_dataset(dir.file("d.bin"));
  for (double p : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
    MixtureBatcher m(ds, 2, 32, BatchMode::kDocument, MixtureOptions{p, 8}, 7);
    const int n = 4000;
    int shorts = 0;
    Batch b;
    for (int i = 0; i < n; ++i) {
      const SequenceKind k = m.next(b);
      ASSERT_EQ(b.tokens.size(), 64u);  // 2 x 32 tokens either way
      if (k == SequenceKind::kShort) {
        ++shorts;
        ASSERT_EQ(b.batch_size, 8);
        ASSERT_EQ(b.seq_len, 8);
      } else {
        ASSERT_EQ(b.batch_size, 2);
        ASSERT_EQ(b.seq_len, 32);
      }
    }
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(shorts, n * p, 5 * sd + 0.5) << "p = " << p;
  }
}

TEST(MixtureBatcher, WithoutShortSequencesDrawsWhatABatcherDraws) {
  TempDir dir;
  const TokenDataset ds = make_dataset(dir.file("d.bin"));
  MixtureBatcher m(ds, 3, 16, BatchMode::kDocument, MixtureOptions{}, 11);
  Batcher plain(ds, 3, 16, BatchMode::kDocument, 11);
  EXPECT_FALSE(m.mixed());
  Batch a, b;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(m.next(a), SequenceKind::kLong);
    plain.next(b);
    ASSERT_EQ(a.tokens, b.tokens);
    ASSERT_EQ(a.doc_start, b.doc_start);
  }
}

TEST(MixtureBatcher, StateResumesTheSameDraws) {
  TempDir dir;
  const TokenDataset ds = make_dataset(dir.file("d.bin"));
  MixtureBatcher a(ds, 2, 32, BatchMode::kDocument, MixtureOptions{0.4, 4}, 3);
  Batch x, y;
  for (int i = 0; i < 7; ++i) a.next(x);
  const MixtureState s = a.state();
  ASSERT_TRUE(s.short_batcher.has_value());
  MixtureBatcher b(ds, 2, 32, BatchMode::kDocument, MixtureOptions{0.4, 4}, 999);
  b.set_state(s);
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(a.next(x), b.next(y)) << "draw " << i;
    ASSERT_EQ(x.tokens, y.tokens);
  }
  MixtureBatcher plain(ds, 2, 32, BatchMode::kDocument, MixtureOptions{}, 3);
  test::expect_error([&] { plain.set_state(s); }, {"short sequences", "--short-fraction"});
}

TEST(MixtureBatcher, RefusesBadOptions) {
  TempDir dir;
  const TokenDataset ds = make_dataset(dir.file("d.bin"));
  test::expect_error(
      [&] {
        MixtureBatcher(ds, 2, 32, BatchMode::kDocument, MixtureOptions{1.5, 8}, 1);
      },
      {"fraction", "1.5", "[0, 1]"});
  test::expect_error(
      [&] {
        MixtureBatcher(ds, 2, 32, BatchMode::kDocument, MixtureOptions{0.5, 12}, 1);
      },
      {"short-sequence length", "12", "divisor", "32"});
  test::expect_error(
      [&] {
        MixtureBatcher(ds, 2, 32, BatchMode::kDocument, MixtureOptions{0.5, 0}, 1);
      },
      {"short-sequence length", "0"});
}

}  // namespace
}  // namespace zebra
