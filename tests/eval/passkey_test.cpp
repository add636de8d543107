// Passkey retrieval without a model (eval/passkey.hpp): scoring fixed outputs, building prompts with a fake
// one-token-per-word tokenizer (exact arithmetic) and with stories260K's real one, and the grid bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "test_paths.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/eval/passkey.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

// One token per whitespace-separated word; the id is the word's length (the ids do not matter here).
std::vector<std::int32_t> word_encode(std::string_view text) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\n') ++j;
    if (j > i) ids.push_back(static_cast<std::int32_t>(j - i));
    i = j;
  }
  return ids;
}

TEST(Passkey, ScoresTheFirstIntegerExactly) {
  EXPECT_TRUE(passkey_correct("12345", 12345));
  EXPECT_TRUE(passkey_correct(" 12345.", 12345));
  EXPECT_TRUE(passkey_correct(" 12345. Remember it. 99999", 12345));
  EXPECT_TRUE(passkey_correct("\n12345\n", 12345));
  EXPECT_FALSE(passkey_correct("the key is 1234", 12345));  // a prefix of the key
  EXPECT_FALSE(passkey_correct("", 12345));
  EXPECT_FALSE(passkey_correct(" twelve thousand", 12345));
  EXPECT_FALSE(passkey_correct("123456", 12345));  // longer: not the key
  EXPECT_FALSE(passkey_correct("1 2345", 12345));
  EXPECT_FALSE(passkey_correct(" 54321 12345", 12345));  // only the first integer counts
  EXPECT_FALSE(passkey_correct("-12345x", 1234));
  EXPECT_EQ(first_integer("abc 0042 7"), "0042");
  EXPECT_EQ(first_integer("none"), "");
}

TEST(Passkey, PromptText) {
  EXPECT_EQ(passkey_line(12345), "The pass key is 12345. Remember it. 12345 is the pass key.");
  std::size_t prefix = 0;
  const std::string t = passkey_text(11111, 6, 2, &prefix);
  EXPECT_EQ(t,
            "The grass is green. The sky is blue.\n"
            "The pass key is 11111. Remember it. 11111 is the pass key.\n"
            "The sun is yellow. Here we go. There and back again. The grass is green.\n"
            "What is the pass key? The pass key is");
  EXPECT_EQ(t.substr(prefix, 15), "The pass key is");
  EXPECT_EQ(passkey_text(22222, 3, 0, &prefix).substr(0, 15), "The pass key is");
  EXPECT_EQ(prefix, 0u);
  EXPECT_THROW(passkey_text(1, 3, 4), Error);
}

// The fake tokenizer's counts: sentences of 4, 4, 4, 3 and 4 tokens; key line 12; question 9; BOS 1.
TEST(Passkey, PromptFitsTheLengthWithTheKeyAtTheDepth) {
  const EncodeFn encode = word_encode;
  for (std::int64_t length : {40, 100, 257, 1000}) {
    for (double depth : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      const PasskeyPrompt p = build_passkey_prompt(encode, 1, length, depth, 54321);
      const auto n = static_cast<std::int64_t>(p.tokens.size());
      EXPECT_LE(n, length) << length << " " << depth;
      EXPECT_GT(n + 4, length) << "one more sentence would have fitted: " << length << " " << depth;
      EXPECT_EQ(p.tokens[0], 1);
      EXPECT_EQ(n, 1 + 12 + 9 + (n - 22));
      EXPECT_NE(p.text.find("The pass key is 54321. Remember it. 54321 is the pass key."), std::string::npos);
      EXPECT_EQ(p.n_before, std::llround(depth * static_cast<double>(p.n_filler)));
      // The key line starts after depth * (filler tokens) tokens of filler, give or take one sentence; in
      // particular first (right after BOS) at depth 0 and right before the question at depth 1.
      const std::int64_t filler_tokens = n - 22;
      EXPECT_LE(std::abs(static_cast<double>(p.key_position - 1) - depth * static_cast<double>(filler_tokens)), 4.0)
          << length << " " << depth;
      if (depth == 0.0) {
        EXPECT_EQ(p.key_position, 1);
      }
      if (depth == 1.0) {
        EXPECT_EQ(p.key_position, n - 12 - 9);
      }
      // The tokens at key_position are the key line's.
      const std::vector<std::int32_t> line = word_encode(passkey_line(54321));
      EXPECT_TRUE(std::equal(line.begin(), line.end(), p.tokens.begin() + p.key_position));
    }
  }
  // Deterministic: the same inputs give the same prompt.
  EXPECT_EQ(build_passkey_prompt(encode, 1, 300, 0.3, 12345).tokens,
            build_passkey_prompt(encode, 1, 300, 0.3, 12345).tokens);
  EXPECT_THROW(build_passkey_prompt(encode, 1, 21, 0.5, 12345), Error);  // the key line and question need 22
  EXPECT_EQ(build_passkey_prompt(encode, 1, 22, 0.5, 12345).n_filler, 0);
  EXPECT_THROW(build_passkey_prompt(encode, 1, 100, 1.5, 12345), Error);
  EXPECT_THROW(build_passkey_prompt(encode, 1, 100, -0.1, 12345), Error);
}

TEST(Passkey, KeysAreFiveDigitsAndFollowTheSeed) {
  const auto a = passkey_keys(50, 7), b = passkey_keys(50, 7), c = passkey_keys(50, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (std::int64_t k : a) {
    EXPECT_GE(k, 10000);
    EXPECT_LE(k, 99999);
  }
  EXPECT_GT(std::set<std::int64_t>(a.begin(), a.end()).size(), 40u);  // not one repeated key
}

// The grid with a fake model that answers correctly exactly when the prompt is short: accuracy 1 in the short
// column, 0 in the long one, cells depth-major.
TEST(Passkey, GridBookkeeping) {
  PasskeyOptions o;
  o.lengths = {60, 300};
  o.depths = {0.0, 0.5, 1.0};
  o.trials = 3;
  o.seed = 5;
  const std::vector<std::int64_t> keys = passkey_keys(3, 5);
  std::int64_t calls = 0;
  const PasskeyResult r = evaluate_passkey(o, word_encode, 1, [&](const std::vector<std::int32_t>& prompt) {
    const std::int64_t key = keys[static_cast<std::size_t>(calls++ % 3)];
    return prompt.size() <= 60 ? " " + std::to_string(key) + "." : std::string(" 1");
  });
  EXPECT_EQ(calls, 18);
  ASSERT_EQ(r.cells.size(), 6u);
  for (std::size_t d = 0; d < 3; ++d) {
    EXPECT_EQ(r.cells[d * 2].length, 60);
    EXPECT_EQ(r.cells[d * 2].depth, o.depths[d]);
    EXPECT_DOUBLE_EQ(r.cells[d * 2].accuracy(), 1.0);
    EXPECT_DOUBLE_EQ(r.cells[d * 2 + 1].accuracy(), 0.0);
    EXPECT_LE(r.cells[d * 2 + 1].prompt_tokens, 300);
    EXPECT_EQ(r.cells[d * 2].trials[1].key, keys[1]);
  }
  EXPECT_EQ(r.n_correct(), 9);
  EXPECT_EQ(r.n_trials(), 18);
  o.depths = {0.5, 1.5};
  EXPECT_THROW(evaluate_passkey(o, word_encode, 1, [](const std::vector<std::int32_t>&) { return std::string(); }),
               Error);
}

// With stories260K's tokenizer (SentencePiece-style BPE): the prompt fits, decodes back to its text, and the
// key line sits at the reported token position.
TEST(Passkey, RealTokenizerPrompt) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto tok = load_tokenizer(test::shared_dir() + "/models/stories260K/tok512.bin");
  const EncodeFn encode = [&](std::string_view s) { return tok->encode(s); };
  for (std::int64_t length : {128, 256}) {
    for (double depth : {0.0, 0.5, 1.0}) {
      const PasskeyPrompt p = build_passkey_prompt(encode, tok->bos_id(), length, depth, 24680);
      EXPECT_LE(static_cast<std::int64_t>(p.tokens.size()), length);
      EXPECT_GT(static_cast<std::int64_t>(p.tokens.size()) + 12, length);  // within a sentence or so
      const std::vector<std::int32_t> body(p.tokens.begin() + 1, p.tokens.end());
      EXPECT_EQ(tok->decode(body), p.text);
      const std::vector<std::int32_t> rest(p.tokens.begin() + p.key_position, p.tokens.end());
      // (A dummy-prefix space may lead the decoded rest.)
      EXPECT_LE(tok->decode(rest).find("The pass key is 24680."), 1u) << tok->decode(rest);
    }
  }
}

}  // namespace
}  // namespace zebra
