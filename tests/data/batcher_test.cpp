#include "zebra/data/batcher.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/temp_dir.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;

// Documents of lengths 0, 1, 2, ... 39 (plus BOS/EOS each): 40 docs, 860 tokens, with a few long
// and many short ones relative to the window lengths used below.
TokenDataset make_dataset(const std::string& path) {
  TokenDatasetWriter w(path, 1000, 1, 2);
  for (int len = 0; len < 40; ++len) {
    std::vector<std::int32_t> ids;
    for (int k = 0; k < len; ++k) ids.push_back(3 + (len * 31 + k * 7) % 997);
    w.add_document(ids);
  }
  w.finish();
  return TokenDataset::open(path);
}

void check_batch(const TokenDataset& ds, const Batch& b) {
  const std::int64_t T = b.seq_len;
  for (std::int64_t r = 0; r < b.batch_size; ++r) {
    const std::int64_t start = b.row_start[static_cast<std::size_t>(r)];
    ASSERT_GE(start, 0);
    ASSERT_LE(start + T + 1, ds.n_tokens());
    for (std::int64_t t = 0; t < T; ++t) {
      const auto i = static_cast<std::size_t>(r * T + t);
      ASSERT_EQ(b.tokens[i], ds.token(start + t));
      ASSERT_EQ(b.targets[i], ds.token(start + t + 1));
      // Brute force: the first token of the document holding position start + t, relative to the row.
      const std::int64_t first = ds.doc_range(ds.doc_of(start + t)).first;
      ASSERT_EQ(b.doc_start[i], first <= start ? 0 : first - start) << "row " << r << " t " << t;
      ASSERT_LE(b.doc_start[i], t);
    }
  }
}

bool same(const Batch& a, const Batch& b) {
  return a.tokens == b.tokens && a.targets == b.targets && a.doc_start == b.doc_start && a.row_start == b.row_start;
}

TEST(Batcher, RandomBatchesAreValidAndSeeded) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  ASSERT_EQ(ds.n_tokens(), 860);
  Batcher a(ds, 4, 16, BatchMode::kRandom, 7), b(ds, 4, 16, BatchMode::kRandom, 7), c(ds, 4, 16, BatchMode::kRandom, 8);
  bool differs = false;
  std::int64_t max_start = 0;
  for (int step = 0; step < 200; ++step) {
    Batch x = a.next(), y = b.next(), z = c.next();
    check_batch(ds, x);
    EXPECT_TRUE(same(x, y));
    differs |= !same(x, z);
    for (auto s : x.row_start) max_start = std::max(max_start, s);
  }
  EXPECT_TRUE(differs);
  EXPECT_GT(max_start, 860 - 17 - 40);  // starts reach the end of the valid range
}

TEST(Batcher, DocStartMarksBoundariesInsideRows) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  Batcher seq(ds, 3, 20, BatchMode::kSequential);
  Batch b = seq.next();
  check_batch(ds, b);
  // Row 0 starts at document 0 (BOS EOS), document 1 (BOS x EOS) starts at 2, document 2 at 5.
  EXPECT_EQ(b.doc_start[0], 0);
  EXPECT_EQ(b.doc_start[1], 0);
  EXPECT_EQ(b.doc_start[2], 2);
  EXPECT_EQ(b.doc_start[4], 2);
  EXPECT_EQ(b.doc_start[5], 5);
  EXPECT_EQ(b.tokens[0], 1);
  EXPECT_EQ(b.tokens[1], 2);
  EXPECT_EQ(b.targets[0], 2);
}

TEST(Batcher, SequentialCoversEveryWindowThenWraps) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  const std::int64_t T = 64;
  Batcher seq(ds, 5, T, BatchMode::kSequential);
  EXPECT_EQ(seq.n_windows(), (860 - 1) / 64);  // 13
  std::vector<std::int64_t> starts;
  for (int step = 0; step < 3; ++step) {
    Batch b = seq.next();
    check_batch(ds, b);
    starts.insert(starts.end(), b.row_start.begin(), b.row_start.end());
  }
  for (std::size_t k = 0; k < starts.size(); ++k) {
    EXPECT_EQ(starts[k], static_cast<std::int64_t>(k % 13) * T);
  }
  EXPECT_EQ(seq.state().epoch, 1);
  EXPECT_EQ(seq.state().cursor, 2);
}

TEST(Batcher, ResumeFromExportedStateIsIdentical) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  for (BatchMode mode : {BatchMode::kRandom, BatchMode::kSequential}) {
    Batcher straight(ds, 3, 24, mode, 1234);
    std::vector<Batch> expected;
    std::string saved;
    for (int step = 0; step < 20; ++step) {
      if (step == 9) saved = batcher_state_to_json(straight.state()).dump();
      expected.push_back(straight.next());
    }
    Batcher resumed(ds, 3, 24, mode, 999);  // the seed is overridden by the state
    resumed.set_state(batcher_state_from_json(nlohmann::json::parse(saved)));
    for (int step = 9; step < 20; ++step) {
      EXPECT_TRUE(same(resumed.next(), expected[static_cast<std::size_t>(step)])) << "step " << step;
    }
  }
}

TEST(Batcher, StateIsValidated) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  Batcher a(ds, 2, 16, BatchMode::kRandom, 1);
  BatcherState s = a.state();
  Batcher other_shape(ds, 2, 32, BatchMode::kRandom, 1);
  EXPECT_THROW(other_shape.set_state(s), Error);
  Batcher other_mode(ds, 2, 16, BatchMode::kSequential, 1);
  EXPECT_THROW(other_mode.set_state(s), Error);
  BatcherState wrong_data = s;
  wrong_data.n_tokens = 5;
  EXPECT_THROW(a.set_state(wrong_data), Error);
  auto j = batcher_state_to_json(s);
  EXPECT_EQ(j["mode"], "random");
  j.erase("cursor");
  EXPECT_THROW(batcher_state_from_json(j), Error);
  EXPECT_THROW(batcher_state_from_json(nlohmann::json::parse(R"({"mode": "shuffled"})")), Error);
  auto big = batcher_state_to_json(s);
  big["rng_state"] = -1;
  EXPECT_THROW(batcher_state_from_json(big), Error);
  // uint64 RNG states survive JSON text exactly.
  BatcherState high = s;
  high.rng_state = 0xFEDCBA9876543210ULL;
  EXPECT_EQ(batcher_state_from_json(nlohmann::json::parse(batcher_state_to_json(high).dump())).rng_state,
            0xFEDCBA9876543210ULL);
}

TEST(Batcher, DatasetShorterThanOneWindow) {
  TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  EXPECT_THROW(Batcher(ds, 1, 860, BatchMode::kRandom), Error);
  Batcher exact(ds, 2, 859, BatchMode::kRandom, 3);  // exactly one window: every start is 0
  Batch b = exact.next();
  EXPECT_EQ(b.row_start, (std::vector<std::int64_t>{0, 0}));
  check_batch(ds, b);
}

}  // namespace
}  // namespace zebra

namespace zebra {
namespace {

// Document mode: every row starts at a document's first token or a multiple of T into it (unless
// clamped at the end of the stream), and both short and long documents get drawn.
TEST(Batcher, DocumentModeAlignsRowsToDocuments) {
  test::TempDir dir;
  auto ds = make_dataset(dir / "d.bin");
  const std::int64_t T = 16, max_start = ds.n_tokens() - T - 1;
  Batcher a(ds, 4, T, BatchMode::kDocument, 3);
  std::int64_t inside_long = 0, at_bos = 0;
  for (int step = 0; step < 100; ++step) {
    Batch x = a.next();
    check_batch(ds, x);
    for (std::int64_t start : x.row_start) {
      const auto [begin, end] = ds.doc_range(ds.doc_of(start));
      ASSERT_TRUE(start == max_start || (start - begin) % T == 0) << start;
      at_bos += start == begin;
      inside_long += start > begin && start != max_start;
    }
  }
  EXPECT_GT(at_bos, 100);
  EXPECT_GT(inside_long, 10);
  // Resume: a batcher given the exported state draws the same batches.
  Batcher c(ds, 4, T, BatchMode::kDocument, 99);
  c.set_state(batcher_state_from_json(batcher_state_to_json(a.state())));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(same(a.next(), c.next()));
  EXPECT_THROW(c.set_state(Batcher(ds, 4, T, BatchMode::kRandom, 1).state()), Error);
}

// Conversations with a loss mask: a target is the next token when the mask scores it, else -1; inputs and
// document starts are those of the unmasked stream.
TEST(Batcher, LossMaskMakesContextTargetsIgnored) {
  TempDir dir;
  {
    TokenDatasetWriter w(dir / "chat.bin", 100, 1, 2, true);
    for (int c = 0; c < 20; ++c) {
      std::vector<std::int32_t> ids;
      std::vector<std::uint8_t> mask;
      for (int k = 0; k < 6 + c % 5; ++k) {
        ids.push_back(3 + (c * 13 + k) % 90);
        mask.push_back(k >= 4 ? 1 : 0);  // the last 2..6 tokens are the answer
      }
      w.add_masked_document(ids, mask);
    }
    w.finish();
  }
  const TokenDataset ds = TokenDataset::open(dir / "chat.bin");
  for (BatchMode mode : {BatchMode::kRandom, BatchMode::kDocument, BatchMode::kSequential}) {
    Batcher batcher(ds, 3, 16, mode, 7);
    for (int i = 0; i < 5; ++i) {
      const Batch b = batcher.next();
      std::int64_t scored = 0;
      for (std::int64_t r = 0; r < 3; ++r) {
        const std::int64_t start = b.row_start[static_cast<std::size_t>(r)];
        for (std::int64_t t = 0; t < 16; ++t) {
          const auto k = static_cast<std::size_t>(r * 16 + t);
          ASSERT_EQ(b.tokens[k], ds.token(start + t));
          ASSERT_EQ(b.targets[k], ds.scored(start + t + 1) ? ds.token(start + t + 1) : -1) << r << " " << t;
          scored += b.targets[k] >= 0 ? 1 : 0;
        }
      }
      EXPECT_GT(scored, 0);
      EXPECT_LT(scored, 3 * 16);
    }
  }
}

// One document per row: targets past the end of the document a row starts in are -1, the ones inside it kept.
TEST(Batcher, OneDocumentPerRowScoresOnlyTheFirstDocument) {
  TempDir dir;
  const TokenDataset ds = make_dataset(dir / "d.bin");
  Batcher batcher(ds, 4, 24, BatchMode::kDocument, 3);
  batcher.set_one_document_per_row(true);
  for (int i = 0; i < 10; ++i) {
    const Batch b = batcher.next();
    for (std::int64_t r = 0; r < 4; ++r) {
      const std::int64_t start = b.row_start[static_cast<std::size_t>(r)];
      const std::int64_t end = ds.doc_range(ds.doc_of(start)).second;
      for (std::int64_t t = 0; t < 24; ++t) {
        const auto k = static_cast<std::size_t>(r * 24 + t);
        ASSERT_EQ(b.tokens[k], ds.token(start + t));
        ASSERT_EQ(b.targets[k], start + t + 1 < end ? ds.token(start + t + 1) : -1) << "row " << r << " t " << t;
      }
    }
  }
}

}  // namespace
}  // namespace zebra
