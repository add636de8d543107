#include "zebra/data/bpe_tokenizer.hpp"

#include <gtest/gtest.h>

#include "data/vocab_util.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::byte_level_vocab;
using Ids = std::vector<std::int32_t>;

TEST(ByteLevel, AlphabetIsABijectionOnBytes) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string enc = byte_level_encode(all);
  EXPECT_EQ(byte_level_decode(enc), all);
  EXPECT_EQ(byte_level_encode(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(byte_level_encode("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(byte_level_encode("A~"), "A~");
  EXPECT_EQ(byte_level_decode("\xE4\xB8\xAD"), "\xE4\xB8\xAD");  // outside the alphabet: as is
}

TEST(BpeTokenizer, MergesApplyByRankNotByPosition) {
  // "b c" outranks "a b": "abc" -> "a", "bc", although "ab" is leftmost.
  BpeTokenizer t(byte_level_vocab({{"b", "c"}, {"a", "b"}, {"a", "bc"}}), "test");
  const std::int32_t bc = 256, abc = 258;
  EXPECT_EQ(t.encode("abc"), (Ids{abc}));
  EXPECT_EQ(t.encode("abab"), (Ids{257, 257}));
  EXPECT_EQ(t.encode("bcx"), (Ids{bc, 'x'}));
  BpeTokenizer u(byte_level_vocab({{"a", "b"}, {"b", "c"}}), "test");
  EXPECT_EQ(u.encode("abc"), (Ids{256, 'c'}));
}

TEST(BpeTokenizer, WordsAreMergedInsidePreTokenizerPieces) {
  BpeTokenizer t(byte_level_vocab({{" ", "w"}, {"a", " "}}), "test");
  // GPT-2 splits "a w" into "a" + " w": the merge "a " never applies across the piece boundary.
  EXPECT_EQ(t.encode("a w"), (Ids{'a', 256}));
  // Runs of spaces: "  w" -> " " + " w".
  EXPECT_EQ(t.encode("a  w"), (Ids{'a', ' ', 256}));
  EXPECT_EQ(t.encode("   "), (Ids{' ', ' ', ' '}));
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.decode(t.encode("a  w   ")), "a  w   ");
}

TEST(BpeTokenizer, SpecialTokensWholeOnlyWhenAsked) {
  BpeTokenizer t(byte_level_vocab({{"<", "|"}}, {"<|im_start|>", "<|im"}, {"<tool>"}), "test");
  const std::int32_t im_start = 257, im = 258, tool = 259;
  EXPECT_EQ(t.encode_special("<|im_start|>hi"), (Ids{im_start, 'h', 'i'}));
  EXPECT_EQ(t.encode_special("<|imx"), (Ids{im, 'x'}));  // the longest token at a position wins
  // Control tokens stay text without parse_special; user-defined (added) tokens are always whole.
  const Ids plain = t.encode("<|im_start|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0);
  EXPECT_EQ(plain.front(), 256);
  EXPECT_EQ(t.encode("a<tool>b"), (Ids{'a', tool, 'b'}));
  // decode round-trips both spellings.
  EXPECT_EQ(t.decode(t.encode_special("x<|im_start|>y<tool>")), "x<|im_start|>y<tool>");
  EXPECT_EQ(t.decode(plain), "<|im_start|>");
}

TEST(BpeTokenizer, RoundTripsUnicodeAndReplacesInvalidUtf8) {
  BpeTokenizer t(byte_level_vocab({{" ", "h"}}), "test");
  const std::string s = "Caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x9A\x80 x\t\n\n  y";
  EXPECT_EQ(t.decode(t.encode(s)), s);
  // Invalid UTF-8 becomes U+FFFD (EF BF BD) before tokenizing: documented, never a crash.
  EXPECT_EQ(t.decode(t.encode("a\xFF"
                              "b")),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(t.decode(t.encode("\xC3")), "\xEF\xBF\xBD");
}

TEST(BpeTokenizer, PiecesSplitCharactersAcrossTokens) {
  BpeTokenizer t(byte_level_vocab({}), "test");
  const Ids ids = t.encode("\xC3\xA9");
  ASSERT_EQ(ids, (Ids{0xC3, 0xA9}));
  EXPECT_EQ(t.piece(ids[0]), "\xC3");
  EXPECT_EQ(t.piece(ids[0]) + t.piece(ids[1]), "\xC3\xA9");
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeWords) {
  // "abc" is a token that the merges cannot reach ("b c" is missing): with ignore_merges it is used.
  VocabData v = byte_level_vocab({{"a", "b"}});
  v.tokens.push_back("abc");
  v.token_types.push_back(1);
  ByteLevelOptions o;
  o.ignore_merges = true;
  EXPECT_EQ(BpeTokenizer(v, "test", o).encode("abc"), (Ids{257}));
  o.ignore_merges = false;
  EXPECT_EQ(BpeTokenizer(v, "test", o).encode("abc"), (Ids{256, 'c'}));
}

TEST(BpeTokenizer, CachedWordsGiveTheSameIds) {
  BpeTokenizer t(byte_level_vocab({{"a", "b"}, {"ab", "ab"}}), "test");
  const Ids first = t.encode("abab abab abab");
  EXPECT_EQ(t.encode("abab abab abab"), first);
  EXPECT_EQ(first, (Ids{257, 32, 257, 32, 257}));  // "abab", then " abab" twice: no merge takes the space
}

TEST(BpeTokenizer, FlagsAndIds) {
  VocabData v = byte_level_vocab({}, {"<|endoftext|>"});
  v.bos_id = v.eos_id = 256;
  BpeTokenizer t(v, "test");
  EXPECT_FALSE(t.add_bos());  // byte-level default
  EXPECT_FALSE(t.add_eos());
  EXPECT_EQ(t.decode({'a', 256, 'b'}), "ab");  // BOS/EOS vanish in decode
  v.add_bos = true;
  EXPECT_TRUE(BpeTokenizer(v, "test").add_bos());
  EXPECT_THROW(t.decode({257}), Error);
  EXPECT_THROW(t.piece(-1), Error);
}

TEST(BpeTokenizer, BadVocabulariesAreRefused) {
  auto message = [](VocabData v) {
    try {
      BpeTokenizer t(std::move(v), "vocab.gguf");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  VocabData v = byte_level_vocab({{"a", "b"}});
  v.merges.push_back("ab zz");
  EXPECT_NE(message(v).find("merge 1 'ab zz'"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.merges = {"nospace"};
  EXPECT_NE(message(v).find("merge 0"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.token_types.pop_back();
  EXPECT_NE(message(v).find("token types"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.eos_id = 100000;
  EXPECT_NE(message(v).find("eos_id 100000"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.pre = "nonesuch";
  EXPECT_NE(message(v).find("nonesuch"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.model = "llama";
  EXPECT_NE(message(v).find("gpt2"), std::string::npos) << message(v);
  v = byte_level_vocab({});
  v.token_types[3] = 99;
  EXPECT_NE(message(v).find("type 99"), std::string::npos) << message(v);
  EXPECT_NE(message(VocabData{}).find("0 tokens"), std::string::npos);
}

TEST(BpeTokenizer, MissingByteCharacterWithoutUnkIsAnError) {
  VocabData v = byte_level_vocab({});
  v.tokens['q'] = "not-q";
  BpeTokenizer t(v, "test");
  EXPECT_THROW(t.encode("q"), Error);
  v.unk_id = 0;
  EXPECT_EQ(BpeTokenizer(v, "test").encode("q"), (Ids{0}));
}

}  // namespace
}  // namespace zebra
