#include "zebra/data/spm_vocab_tokenizer.hpp"

#include <gtest/gtest.h>

#include "data/vocab_util.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::spm_vocab;
using Ids = std::vector<std::int32_t>;

// ids: test::small_spm_vocab() (vocab_util.hpp): 3 "▁", 4 "a", 5 "b", 6 "▁a", 7 "ab", 8 "▁ab", 9 "c", 10 "bc"; bytes
// from 11.
VocabData small() { return test::small_spm_vocab(); }
constexpr std::int32_t kSp = 3, kA = 4, kB = 5, kSpA = 6, kAb = 7, kSpAb = 8, kC = 9, kBc = 10, kBytes = 11;

TEST(SpmVocabTokenizer, MergesByScoreHighestFirst) {
  SpmVocabTokenizer t(small(), "test");
  // "▁ab": "▁a" (-4) beats "ab" (-5), then "▁ab".
  EXPECT_EQ(t.encode("ab"), (Ids{kSpAb}));
  // "▁abc": "▁a" (-4) first, then "bc" (-4.5) beats "▁ab" (-6): ▁a + bc.
  EXPECT_EQ(t.encode("abc"), (Ids{kSpA, kBc}));
  // A space prefix only at the start: "b a" -> "▁b▁a" -> ▁ b ▁a.
  EXPECT_EQ(t.encode("b a"), (Ids{kSp, kB, kSpA}));
}

TEST(SpmVocabTokenizer, ByteFallbackAndUnknown) {
  SpmVocabTokenizer t(small(), "test");
  // "é" has no token: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{kSp, kBytes + 0xC3, kBytes + 0xA9}));
  EXPECT_EQ(t.decode(t.encode("a\xC3\xA9 \xE4\xB8\xAD")), "a\xC3\xA9 \xE4\xB8\xAD");
  SpmVocabTokenizer no_bytes(spm_vocab({{"\xE2\x96\x81", -1}, {"a", -2}}, false), "test");
  EXPECT_EQ(no_bytes.encode("a\xC3\xA9"
                            "a"),
            (Ids{3, 4, 0, 4}));  // one <unk> per character
}

TEST(SpmVocabTokenizer, SpacesAndEmptyText) {
  SpmVocabTokenizer t(small(), "test");
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.encode(" "), (Ids{kSp, kSp}));
  for (std::string s : {" ", "  a", "a  b   ", "\n\t x", "abc bca"}) EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  VocabData v = small();
  v.add_space_prefix = false;
  SpmVocabTokenizer raw(v, "test");
  EXPECT_EQ(raw.encode("ab"), (Ids{kAb}));
  EXPECT_EQ(raw.decode(raw.encode(" ab")), " ab");
}

TEST(SpmVocabTokenizer, SpecialTokensAndFlags) {
  SpmVocabTokenizer t(small(), "test");
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  // With parse_special "</s>" is one token, and the text after it gets a space prefix again (as
  // llama.cpp does), which decode takes off again.
  EXPECT_EQ(t.encode_special("a</s>a"), (Ids{kSpA, 2, kSpA}));
  EXPECT_EQ(t.decode(t.encode_special("a</s>a")), "aa");
  EXPECT_EQ(t.decode({1, kSpA, kB}), "ab");  // BOS vanishes, the prefix space goes
  const Ids plain = t.encode("</s>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(t.decode(plain), "</s>");
}

TEST(SpmVocabTokenizer, MergesInsteadOfScores) {
  // A tokenizer.json BPE with byte_fallback (Llama 2 on the Hub): merges by rank decide.
  VocabData v = small();
  v.scores.clear();
  v.merges = {"a b", "\xE2\x96\x81 a", "b c"};
  SpmVocabTokenizer t(v, "test");
  EXPECT_TRUE(t.uses_merges());
  EXPECT_EQ(t.encode("abc"), (Ids{kSp, kAb, kC}));  // "a b" ranks first; no merge "▁ ab" exists
}

TEST(SpmVocabTokenizer, RefusesWhatItCannotUse) {
  VocabData v = small();
  v.scores.clear();
  EXPECT_THROW(SpmVocabTokenizer(v, "test"), Error);
  v = small();
  v.scores[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(SpmVocabTokenizer(v, "test"), Error);
  v = small();
  v.scores.pop_back();
  EXPECT_THROW(SpmVocabTokenizer(v, "test"), Error);
  v = small();
  v.add_bos = true;
  v.bos_id = -1;
  EXPECT_THROW(SpmVocabTokenizer(v, "test"), Error);
  EXPECT_EQ(make_vocab_tokenizer(small(), "test")->file_name(), "tokenizer.json");
  v = small();
  v.model = "bert";
  try {
    make_vocab_tokenizer(v, "x.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zebra
