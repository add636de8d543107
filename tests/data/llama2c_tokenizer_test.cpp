#include "zebra/data/llama2c_tokenizer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "data/llama2c_vocab.hpp"
#include "data/temp_dir.hpp"
#include "test_paths.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;

std::string tok512_path() { return test::shared_dir() + "/models/stories260K/tok512.bin"; }
std::string val_text_path() { return test::shared_dir() + "/models/stories260K/tinystories_val.txt"; }

// llama2.c's encode() transcribed literally (quadratic merge loop), as the reference.
std::vector<std::int32_t> reference_encode(const Llama2cTokenizer& t, const std::string& text) {
  std::vector<std::int32_t> tokens;
  if (text.empty()) return tokens;
  tokens.push_back(t.lookup(" "));
  std::string buf;
  for (std::size_t k = 0; k < text.size(); ++k) {
    auto c = static_cast<unsigned char>(text[k]);
    if ((c & 0xC0) != 0x80) buf.clear();
    buf.push_back(static_cast<char>(c));
    unsigned char next = k + 1 < text.size() ? static_cast<unsigned char>(text[k + 1]) : 0;
    if ((next & 0xC0) == 0x80 && buf.size() < 4) continue;
    std::int32_t id = t.lookup(buf);
    if (id != -1) {
      tokens.push_back(id);
    } else {
      for (char b : buf) tokens.push_back(static_cast<unsigned char>(b) + 3);
    }
    buf.clear();
  }
  for (;;) {
    float best_score = -1e10f;
    std::int32_t best_id = -1;
    std::int64_t best_idx = -1;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
      std::int32_t id = t.lookup(t.raw_piece(tokens[i]) + t.raw_piece(tokens[i + 1]));
      if (id != -1 && t.score(id) > best_score) {
        best_score = t.score(id);
        best_id = id;
        best_idx = static_cast<std::int64_t>(i);
      }
    }
    if (best_idx == -1) break;
    tokens[static_cast<std::size_t>(best_idx)] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  return tokens;
}

// A small vocabulary in llama2.c's layout: <unk>, BOS, EOS, 256 byte pieces, then merges.
std::unique_ptr<Llama2cTokenizer> small_vocab() {
  test::Llama2cVocab v = test::llama2c_vocab({" t", "he",  " the", " a", "an",  " an", "nd",       " and",
                                              "aa", "aaa", "ab",   "ba", "bab", "aba", " ",        "a",
                                              "b",  "t",   "h",    "e",  "n",   "d",   "\xC3\xA9", "\xE2\x98\x83"});
  // Equal scores, to exercise the leftmost tie-break.
  v.scores[v.pieces.size() - 12] = v.scores[v.pieces.size() - 13];
  return std::make_unique<Llama2cTokenizer>(v.pieces, v.scores, 16);
}

TEST(Llama2cTokenizer, MatchesReferenceOnRandomText) {
  auto t = small_vocab();
  const char* alphabet[] = {
      "a",    "b",    " ",  "t", "h", "e", "n", "d", "\xC3\xA9", "\xE2\x98\x83", "\xF0\x9F\x98\x80",
      "\xFF", "\x80", "\n", "x"};
  Rng rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    auto len = rng.below(60);
    for (std::uint64_t k = 0; k < len; ++k) s += alphabet[rng.below(15)];
    ASSERT_EQ(t->encode(s), reference_encode(*t, s)) << "text: " << s;
  }
  EXPECT_TRUE(t->encode("").empty());
}

TEST(Llama2cTokenizer, DecodeRoundTripsAndPieces) {
  auto t = small_vocab();
  for (std::string s : {"the and an", " leading space", "aaaa baba", "caf\xC3\xA9 \xE2\x98\x83", "x\ny", "q"}) {
    auto ids = t->encode(s);
    EXPECT_EQ(t->decode(ids), s);
    std::vector<std::int32_t> with_bos = {1};
    with_bos.insert(with_bos.end(), ids.begin(), ids.end());
    with_bos.push_back(2);
    EXPECT_EQ(t->decode(with_bos), s);
  }
  EXPECT_EQ(t->piece(3 + 'A'), "A");  // <0x41>
  EXPECT_EQ(t->piece(1), "");
  EXPECT_EQ(t->raw_piece(1), "\n<s>\n");
  EXPECT_THROW(t->decode({100000}), Error);
  EXPECT_THROW(t->piece(-1), Error);
}

TEST(Llama2cTokenizer, SaveIsByteIdenticalAndHostileFilesAreRefused) {
  TempDir dir;
  auto t = small_vocab();
  t->save(dir / "tokenizer.bin");
  const std::string bytes = read_file(dir / "tokenizer.bin");
  auto back = Llama2cTokenizer::load(dir / "tokenizer.bin");
  EXPECT_EQ(back->vocab_size(), t->vocab_size());
  back->save(dir / "again.bin");
  EXPECT_EQ(read_file(dir / "again.bin"), bytes);

  auto error_of = [&](const std::string& b) -> std::string {
    write_bytes(dir / "h.bin", b);
    try {
      Llama2cTokenizer::load(dir / "h.bin");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  auto has = [](const std::string& msg, const std::string& frag) { return msg.find(frag) != std::string::npos; };
  EXPECT_TRUE(has(error_of(""), "too short"));
  EXPECT_TRUE(has(error_of(bytes.substr(0, 2)), "too short"));
  // Cut inside token 0's record header, and inside token 1's text ("\n<s>\n" is 5 bytes).
  std::string m = error_of(bytes.substr(0, 4 + 5));
  EXPECT_TRUE(has(m, "h.bin") && has(m, "token 0") && has(m, "8-byte")) << m;
  const std::size_t token1 = 4 + 8 + 5;
  m = error_of(bytes.substr(0, token1 + 8 + 2));
  EXPECT_TRUE(has(m, "token 1") && has(m, "expected 5 bytes")) << m;
  // Every cut either loads a prefix of the vocabulary or fails with an Error; none crash.
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    try {
      auto p = Llama2cTokenizer::from_bytes(std::string_view(bytes).substr(0, cut), "cut.bin");
      EXPECT_LE(p->vocab_size(), t->vocab_size());
    } catch (const Error&) {
    }
  }
  std::string b = bytes;
  std::int32_t v = -5;
  std::memcpy(b.data() + 4 + 4, &v, 4);  // token 0 length
  EXPECT_TRUE(has(error_of(b), "length -5"));
  v = 1 << 30;
  std::memcpy(b.data() + 4 + 4, &v, 4);
  EXPECT_TRUE(has(error_of(b), "max_token_length"));
  b = bytes;
  v = 0;
  std::memcpy(b.data(), &v, 4);
  EXPECT_TRUE(has(error_of(b), "max_token_length is 0"));
  b = bytes;
  float nan = std::nanf("");
  std::memcpy(b.data() + 4, &nan, 4);
  EXPECT_TRUE(has(error_of(b), "NaN"));
}

TEST(Llama2cTokenizer, Stories260KReference) {
  if (!test::shared_available() || !std::filesystem::exists(tok512_path())) GTEST_SKIP() << "../shared not available";
  auto t = Llama2cTokenizer::load(tok512_path());
  EXPECT_EQ(t->vocab_size(), 512);
  EXPECT_EQ(t->max_token_length(), 7);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  const std::string text = read_file(val_text_path());
  const std::string head = text.substr(0, 3000);  // the first 3000 characters are ASCII
  auto ids = t->encode(head);
  EXPECT_EQ(ids.size(), 1498u);  // the published reference count (no BOS)
  EXPECT_EQ(ids, reference_encode(*t, head));
  EXPECT_EQ(t->decode(ids), head);
  // Unicode beyond the vocabulary falls back to bytes and round-trips.
  const std::string odd = "Tim said \xE2\x80\x9Chi\xE2\x80\x9D \xE6\x97\xA5 \xF0\x9F\x98\x80";
  EXPECT_EQ(t->decode(t->encode(odd)), odd);
  EXPECT_EQ(t->encode(odd), reference_encode(*t, odd));
  // The file saves back byte-identically.
  TempDir dir;
  t->save(dir / "tokenizer.bin");
  EXPECT_EQ(read_file(dir / "tokenizer.bin"), read_file(tok512_path()));
}

TEST(Llama2cTokenizer, Stories260KTruncatedCopy) {
  if (!test::shared_available() || !std::filesystem::exists(tok512_path())) GTEST_SKIP() << "../shared not available";
  TempDir dir;
  const std::string bytes = read_file(tok512_path());
  write_bytes(dir / "tok512.bin", bytes.substr(0, bytes.size() - 3));
  try {
    Llama2cTokenizer::load(dir / "tok512.bin");
    ADD_FAILURE() << "truncated tokenizer loaded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("tok512.bin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("token 511"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace zebra
