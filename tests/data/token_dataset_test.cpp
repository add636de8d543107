#include "zebra/data/token_dataset.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "data/temp_dir.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void put_u64(std::string& bytes, std::size_t at, std::uint64_t v) { std::memcpy(bytes.data() + at, &v, 8); }

std::string write_sample(const std::string& path, std::int64_t vocab) {
  TokenDatasetWriter w(path, vocab, 1, 2);
  w.add_document(std::vector<std::int32_t>{5, 6, 7});
  w.add_document(std::vector<std::int32_t>{});
  w.add_document(std::vector<std::int32_t>{static_cast<std::int32_t>(vocab - 1), 3});
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing under the real name before finish()
  w.finish();
  return read_file(path);
}

TEST(TokenDataset, RoundTrip2Byte) {
  TempDir dir;
  std::string bytes = write_sample(dir / "d.bin", 300);
  // Header 40 + 11 tokens x 2 + 4 offsets x 8.
  EXPECT_EQ(bytes.size(), 40u + 22u + 32u);
  EXPECT_EQ(bytes.substr(0, 8), "ZEBRATOK");
  auto ds = TokenDataset::open(dir / "d.bin");
  EXPECT_EQ(ds.token_width(), 2);
  EXPECT_EQ(ds.vocab_size(), 300);
  EXPECT_EQ(ds.n_tokens(), 11);
  EXPECT_EQ(ds.n_docs(), 3);
  std::vector<std::int32_t> all(11);
  ds.read(0, 11, all.data());
  EXPECT_EQ(all, (std::vector<std::int32_t>{1, 5, 6, 7, 2, 1, 2, 1, 299, 3, 2}));
  EXPECT_EQ(ds.token(8), 299);
  using Range = std::pair<std::int64_t, std::int64_t>;
  EXPECT_EQ(ds.doc_range(0), (Range{0, 5}));
  EXPECT_EQ(ds.doc_range(1), (Range{5, 7}));
  EXPECT_EQ(ds.doc_range(2), (Range{7, 11}));
  EXPECT_EQ(ds.doc_of(0), 0);
  EXPECT_EQ(ds.doc_of(4), 0);
  EXPECT_EQ(ds.doc_of(5), 1);
  EXPECT_EQ(ds.doc_of(10), 2);
  EXPECT_THROW(ds.token(11), Error);
  EXPECT_THROW(ds.token(-1), Error);
  EXPECT_THROW(ds.doc_range(3), Error);
  EXPECT_THROW(ds.read(5, 7, all.data()), Error);
}

TEST(TokenDataset, RoundTrip4Byte) {
  TempDir dir;
  write_sample(dir / "d.bin", 100000);
  auto ds = TokenDataset::open(dir / "d.bin");
  EXPECT_EQ(ds.token_width(), 4);
  EXPECT_EQ(ds.token(7), 1);
  EXPECT_EQ(ds.token(8), 99999);
  // 65536 still fits 2 bytes (ids up to 65535).
  write_sample(dir / "e.bin", 65536);
  EXPECT_EQ(TokenDataset::open(dir / "e.bin").token_width(), 2);
  EXPECT_EQ(TokenDataset::open(dir / "e.bin").token(8), 65535);
}

TEST(TokenDataset, EmptyDatasetAndWriterErrors) {
  TempDir dir;
  {
    TokenDatasetWriter w(dir / "empty.bin", 10, 1, 2);
    w.finish();
  }
  auto ds = TokenDataset::open(dir / "empty.bin");
  EXPECT_EQ(ds.n_tokens(), 0);
  EXPECT_EQ(ds.n_docs(), 0);
  {
    TokenDatasetWriter w(dir / "x.bin", 10, 1, 2);
    EXPECT_THROW(w.add_document(std::vector<std::int32_t>{3, 10}), Error);
    EXPECT_THROW(w.add_document(std::vector<std::int32_t>{-1}), Error);
  }  // dropped without finish: no file, no temporary left behind
  EXPECT_FALSE(std::filesystem::exists(dir / "x.bin"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.str()), std::filesystem::directory_iterator()), 1);
  EXPECT_THROW(TokenDatasetWriter(dir / "y.bin", 10, 1, 10), Error);
}

TEST(TokenDataset, HostileFiles) {
  TempDir dir;
  const std::string good = write_sample(dir / "good.bin", 300);
  auto open_bytes = [&](const std::string& bytes) {
    write_bytes(dir / "h.bin", bytes);
    return error_of([&] { TokenDataset::open(dir / "h.bin"); });
  };
  auto contains = [](const std::string& msg, const std::string& frag) { return msg.find(frag) != std::string::npos; };
  EXPECT_TRUE(contains(open_bytes(""), "shorter than the 40-byte header"));
  EXPECT_TRUE(contains(open_bytes(good.substr(0, 39)), "shorter than the 40-byte header"));
  std::string b = good;
  b[0] = 'X';
  EXPECT_TRUE(contains(open_bytes(b), "bad magic"));
  b = good;
  b[8] = 3;
  EXPECT_TRUE(contains(open_bytes(b), "version 3"));
  b = good;
  b[8] = 2;  // a version 1 file claiming a loss mask: the sizes no longer add up
  EXPECT_TRUE(contains(open_bytes(b), "h.bin")) << open_bytes(b);
  b = good;
  b[12] = 3;
  EXPECT_TRUE(contains(open_bytes(b), "token width 3"));
  b = good;
  put_u64(b, 16, 0);
  EXPECT_TRUE(contains(open_bytes(b), "vocab_size 0"));
  b = good;
  put_u64(b, 16, 70000);  // does not fit 2-byte tokens
  EXPECT_TRUE(contains(open_bytes(b), "does not fit"));
  // Truncated tokens / offsets.
  for (std::size_t cut : {41ul, 50ul, 60ul, good.size() - 1}) {
    std::string msg = open_bytes(good.substr(0, cut));
    EXPECT_TRUE(contains(msg, "h.bin")) << cut << ": " << msg;
    EXPECT_FALSE(msg.empty()) << cut;
  }
  EXPECT_FALSE(open_bytes(good + "x").empty());  // trailing garbage
  // n_tokens / n_docs so large that n * width or (n + 1) * 8 would overflow 64 bits.
  b = good;
  put_u64(b, 24, ~std::uint64_t{0});
  EXPECT_TRUE(contains(open_bytes(b), "tokens of 2 bytes"));
  b = good;
  put_u64(b, 24, (std::uint64_t{1} << 63) + 5);
  EXPECT_FALSE(open_bytes(b).empty());
  b = good;
  put_u64(b, 32, ~std::uint64_t{0});
  EXPECT_TRUE(contains(open_bytes(b), "documents"));
  // Offsets: first not 0, decreasing, beyond n_tokens, last not n_tokens.
  const std::size_t off = 40 + 22;  // offsets 0, 5, 7, 11
  b = good;
  put_u64(b, off, 1);
  EXPECT_TRUE(contains(open_bytes(b), "first document offset"));
  b = good;
  put_u64(b, off + 16, 4);  // offsets 0, 5, 4, 11
  EXPECT_TRUE(contains(open_bytes(b), "must not decrease"));
  b = good;
  put_u64(b, off + 16, 1000);
  EXPECT_TRUE(contains(open_bytes(b), "must not decrease"));
  b = good;
  put_u64(b, off + 24, 8);
  EXPECT_TRUE(contains(open_bytes(b), "last offset"));
  // A token outside the vocabulary: caught at open, or not when verification is off.
  b = good;
  b[40 + 2 * 3] = static_cast<char>(0x2C);  // token 3 := 0x012C = 300
  b[40 + 2 * 3 + 1] = 0x01;
  EXPECT_TRUE(contains(open_bytes(b), "token 3 has id 300"));
  EXPECT_NO_THROW(TokenDataset::open(dir / "h.bin", false));
}

// Version 2: documents with a loss mask. Text documents added to a masked writer are scored whole, masked ones
// are stored as given (no BOS / EOS added) with their mask.
TEST(TokenDataset, LossMaskRoundTrip) {
  TempDir dir;
  {
    TokenDatasetWriter w(dir / "m.bin", 300, 1, 2, /*loss_mask=*/true);
    EXPECT_TRUE(w.has_loss_mask());
    w.add_masked_document(std::vector<std::int32_t>{10, 11, 12, 13}, std::vector<std::uint8_t>{0, 0, 1, 1});
    w.add_document(std::vector<std::int32_t>{20});
    w.add_masked_document(std::vector<std::int32_t>{30, 31}, std::vector<std::uint8_t>{1, 0});
    w.finish();
  }
  const TokenDataset ds = TokenDataset::open(dir / "m.bin");
  ASSERT_TRUE(ds.has_loss_mask());
  ASSERT_EQ(ds.n_tokens(), 9);
  ASSERT_EQ(ds.n_docs(), 3);
  const std::vector<std::int32_t> tokens = {10, 11, 12, 13, 1, 20, 2, 30, 31};
  const std::vector<int> scored = {0, 0, 1, 1, 1, 1, 1, 1, 0};
  for (std::int64_t i = 0; i < 9; ++i) {
    EXPECT_EQ(ds.token(i), tokens[static_cast<std::size_t>(i)]) << i;
    EXPECT_EQ(ds.scored(i), scored[static_cast<std::size_t>(i)] == 1) << i;
  }
  EXPECT_EQ(ds.n_scored(), 6);
  EXPECT_EQ(ds.doc_range(1), (std::pair<std::int64_t, std::int64_t>{4, 7}));
  // A version 1 file has no mask: everything is scored.
  write_sample(dir / "v1.bin", 300);
  const TokenDataset v1 = TokenDataset::open(dir / "v1.bin");
  EXPECT_FALSE(v1.has_loss_mask());
  EXPECT_EQ(v1.n_scored(), v1.n_tokens());
  EXPECT_TRUE(v1.scored(0));
}

TEST(TokenDataset, LossMaskRefusals) {
  TempDir dir;
  TokenDatasetWriter plain(dir / "p.bin", 300, 1, 2);
  EXPECT_NE(error_of([&] {
              plain.add_masked_document(std::vector<std::int32_t>{5}, std::vector<std::uint8_t>{1});
            }).find("loss_mask"),
            std::string::npos);
  TokenDatasetWriter w(dir / "m.bin", 300, 1, 2, true);
  EXPECT_NE(error_of([&] {
              w.add_masked_document(std::vector<std::int32_t>{5, 6}, std::vector<std::uint8_t>{1});
            }).find("2 tokens but 1 mask values"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              w.add_masked_document(std::vector<std::int32_t>{5}, std::vector<std::uint8_t>{2});
            }).find("expected 0 or 1"),
            std::string::npos);
  EXPECT_THROW(w.add_masked_document(std::vector<std::int32_t>{300}, std::vector<std::uint8_t>{1}), Error);
  w.add_masked_document(std::vector<std::int32_t>{5, 6, 7}, std::vector<std::uint8_t>{0, 1, 1});
  w.finish();
  const std::string good = read_file(dir / "m.bin");
  auto open_bytes = [&](const std::string& bytes) {
    write_bytes(dir / "h.bin", bytes);
    return error_of([&] { TokenDataset::open(dir / "h.bin"); });
  };
  EXPECT_TRUE(open_bytes(good).empty());
  std::string b = good;
  b[b.size() - 1] = 7;  // the last mask byte
  EXPECT_NE(open_bytes(b).find("loss mask value 7 at token 2"), std::string::npos) << open_bytes(b);
  for (std::size_t cut = 41; cut < good.size(); ++cut) {
    EXPECT_NE(open_bytes(good.substr(0, cut)).find("h.bin"), std::string::npos) << cut;
  }
  EXPECT_FALSE(open_bytes(good + "x").empty());
}

}  // namespace
}  // namespace zebra
