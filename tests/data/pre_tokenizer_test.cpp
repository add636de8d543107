#include "zebra/data/pre_tokenizer.hpp"

#include <gtest/gtest.h>

#include "zebra/util/error.hpp"

namespace zebra {
namespace {

std::vector<std::string> split(std::string_view pre, std::string_view text) {
  RegexSplitter s(pre_tokenizer_regexes(pre));
  std::vector<std::string> out;
  for (auto p : s.split(text)) out.emplace_back(p);
  return out;
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world"), (V{"Hello", " world"}));
  // A run of spaces leaves its last space to the next word; trailing spaces stay one piece.
  EXPECT_EQ(split("gpt-2", "a   b  "), (V{"a", "  ", " b", "  "}));
  EXPECT_EQ(split("gpt-2", "I'll don't 'RE"), (V{"I", "'ll", " don", "'t", " '", "RE"}));
  EXPECT_EQ(split("gpt-2", "x1234 !!?\n\n"), (V{"x", "1234", " !!?", "\n\n"}));
  // Unicode letter and number classes (UCP): Cyrillic letters, Arabic-Indic digits.
  EXPECT_EQ(split("gpt-2", "\xD0\xBF\xD1\x80\xD0\xB8 \xD9\xA3\xD9\xA4"),
            (V{"\xD0\xBF\xD1\x80\xD0\xB8", " \xD9\xA3\xD9\xA4"}));
  EXPECT_TRUE(split("gpt-2", "").empty());
}

TEST(PreTokenizer, DigitsPerFamily) {
  EXPECT_EQ(split("starcoder", "ab 1234"), (V{"ab", " ", "1", "2", "3", "4"}));
  EXPECT_EQ(split("smollm", "x12"), (V{"x", "1", "2"}));
  EXPECT_EQ(split("llama-bpe", "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split("qwen2", "123"), (V{"1", "2", "3"}));
}

TEST(PreTokenizer, Llama3) {
  // Case-insensitive contractions, a letter run takes one leading non-letter, line breaks group.
  EXPECT_EQ(split("llama-bpe", "I'LL go.\n\n  (x)"), (V{"I", "'LL", " go", ".\n\n", " ", " (", "x", ")"}));
  EXPECT_EQ(split("llama-bpe", "\t\n hi"), (V{"\t\n", " hi"}));
}

TEST(PreTokenizer, EmptyMatchesAreSkippedAndPiecesCoverTheText) {
  RegexSplitter s({"x*"});
  std::vector<std::string> out;
  for (auto p : s.split("abxxc")) out.emplace_back(p);
  EXPECT_EQ(out, (V{"ab", "xx", "c"}));
  RegexSplitter none({});
  EXPECT_EQ(none.split("a b").size(), 1u);
}

TEST(PreTokenizer, ErrorsNameThePatternOrName) {
  try {
    RegexSplitter bad({"(unclosed"});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos) << e.what();
  }
  try {
    pre_tokenizer_regexes("klingon");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("klingon"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos) << e.what();
  }
}

TEST(PreTokenizer, LongWhitespaceRunDoesNotFail) {
  // \s+(?!\S) backtracks over the whole run: a long run must not exhaust the JIT stack.
  const std::string text = std::string(200000, ' ') + "a";
  RegexSplitter s(pre_tokenizer_regexes("gpt-2"));
  auto pieces = s.split(text);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[1], " a");
}

}  // namespace
}  // namespace zebra
