// prepare on the real gutenberg-mini corpus (8 long books, 3.2 M characters): twice, byte-identical.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/temp_dir.hpp"
#include "test_paths.hpp"
#include "zebra/data/prepare.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace {

TEST(PrepareSlow, GutenbergMiniTwiceIsIdentical) {
  const std::string mini = test::shared_dir() + "/data/gutenberg/gutenberg-mini.jsonl.zst";
  if (!test::shared_available() || !std::filesystem::exists(mini)) GTEST_SKIP() << "../shared not available";
  test::TempDir dir;
  PrepareOptions o;
  o.inputs = {mini};
  o.train.vocab_size = 2048;
  o.valid_docs = 1;
  o.progress = false;
  o.out_dir = dir / "a";
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.corpus.documents, 8);
  EXPECT_EQ(r.train.documents, 7);
  EXPECT_EQ(r.valid.documents, 1);
  EXPECT_GT(r.corpus.characters, 3'000'000);
  EXPECT_GT(r.train.chars_per_token(), 2.5);  // a 2k BPE vocabulary on English prose: about 2.9
  o.out_dir = dir / "b";
  prepare_dataset(o);
  for (const char* f : {"train.bin", "valid.bin", "tokenizer.model"}) {
    EXPECT_EQ(read_file(dir / (std::string("a/") + f)), read_file(dir / (std::string("b/") + f))) << f;
  }
  // The held-out book decodes back to its text.
  auto tok = load_tokenizer(dir / "a/tokenizer.model");
  auto ds = TokenDataset::open(dir / "a/valid.bin");
  auto [b, e] = ds.doc_range(0);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(e - b - 2));
  ds.read(b + 1, e - b - 2, ids.data());
  EXPECT_EQ(static_cast<std::int64_t>(tok->decode(ids).size()), r.valid.bytes);
}

}  // namespace
}  // namespace zebra
