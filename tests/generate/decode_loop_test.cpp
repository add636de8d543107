// The decode loop with a scripted "model": each step returns logits whose argmax is the next token of a
// script, so greedy decoding replays it. Stop tokens, stop strings (cut, and the tokens kept), max tokens,
// streaming pieces, and which tokens went through the step.
#include "zebra/generate/decode_loop.hpp"

#include <gtest/gtest.h>

#include "generate/test_tokenizer.hpp"
#include "zebra/generate/utf8.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::PieceTokenizer;

class Script {
 public:
  Script(const Tokenizer& tok, std::vector<std::int32_t> tokens)
      : vocab_(tok.vocab_size()), tokens_(std::move(tokens)) {}
  // Logits [V] pointing at script token i.
  std::span<const float> logits(std::size_t i) {
    logits_.assign(static_cast<std::size_t>(vocab_), 0.0f);
    if (i < tokens_.size()) logits_[static_cast<std::size_t>(tokens_[i])] = 10.0f;
    return logits_;
  }
  DecodeStep step() {
    return [this](std::int32_t t) {
      fed.push_back(t);
      return logits(fed.size());
    };
  }
  std::vector<std::int32_t> fed;

 private:
  std::int64_t vocab_;
  std::vector<std::int32_t> tokens_;
  std::vector<float> logits_;
};

std::vector<std::int32_t> bytes(std::string_view s) {
  std::vector<std::int32_t> ids;
  for (char c : s) ids.push_back(PieceTokenizer::byte_id(c));
  return ids;
}

struct LoopRun {
  DecodeResult result;
  std::vector<std::string> pieces;
  std::vector<std::int32_t> fed;
};

LoopRun run(const PieceTokenizer& tok, const std::vector<std::int32_t>& script, DecodeOptions o) {
  Script s(tok, script);
  Sampler greedy(greedy_sampling());
  StreamingDetokenizer detok(tok);
  LoopRun r;
  o.detokenizer = &detok;
  o.on_text = [&](const std::string& p) { r.pieces.push_back(p); };
  const std::span<const float> first = s.logits(0);
  r.result = decode_loop(std::vector<float>(first.begin(), first.end()), greedy, s.step(), o);
  r.fed = s.fed;
  return r;
}

std::string join(const std::vector<std::string>& pieces) {
  std::string s;
  for (const std::string& p : pieces) s += p;
  return s;
}

TEST(DecodeLoop, StopsAtAStopTokenWithoutEmittingIt) {
  const PieceTokenizer tok;
  std::vector<std::int32_t> script = bytes("abc");
  script.push_back(tok.eos_id());
  script.push_back(PieceTokenizer::byte_id('z'));
  DecodeOptions o;
  o.max_new_tokens = 10;
  o.stop_tokens = {tok.eos_id()};
  const LoopRun r = run(tok, script, o);
  EXPECT_EQ(r.result.stop_reason, StopReason::kStopToken);
  EXPECT_EQ(r.result.text, "abc");
  EXPECT_EQ(r.result.tokens, std::vector<std::int32_t>(script.begin(), script.begin() + 4));  // EOS included
  EXPECT_EQ(r.result.n_kept, 3u);
  EXPECT_EQ(r.result.kept_bytes, 3u);
  EXPECT_EQ(r.fed, bytes("abc"));  // the stop token is not run
  EXPECT_EQ(r.result.n_decoded, 3);
  EXPECT_EQ(join(r.pieces), r.result.text);
  EXPECT_STREQ(to_string(r.result.stop_reason), "stop token");
}

TEST(DecodeLoop, CutsAtAStopStringAndKeepsTheTokensBeforeIt) {
  // "lo\nU" is one token: it straddles the cut before "\nUser:", so it is not kept, though "lo" is shown.
  const PieceTokenizer tok({"Hel", "lo\nU", "ser:"});
  const std::vector<std::int32_t> script = {tok.id_of("Hel"), tok.id_of("lo\nU"), tok.id_of("ser:"),
                                            PieceTokenizer::byte_id('x')};
  DecodeOptions o;
  o.max_new_tokens = 10;
  o.stop_strings = {"\nUser:"};
  const LoopRun r = run(tok, script, o);
  EXPECT_EQ(r.result.stop_reason, StopReason::kStopString);
  EXPECT_EQ(r.result.text, "Hello");
  EXPECT_EQ(join(r.pieces), "Hello");
  EXPECT_EQ(r.result.tokens, std::vector<std::int32_t>(script.begin(), script.begin() + 3));
  EXPECT_EQ(r.result.n_kept, 1u);
  EXPECT_EQ(r.result.kept_bytes, 3u);                                               // "Hel"
  EXPECT_EQ(r.fed, std::vector<std::int32_t>(script.begin(), script.begin() + 2));  // "ser:" completed it: not run
}

TEST(DecodeLoop, StopsAtMaxTokensAndRunsAllButTheLast) {
  const PieceTokenizer tok;
  DecodeOptions o;
  o.max_new_tokens = 3;
  const LoopRun r = run(tok, bytes("abcdef"), o);
  EXPECT_EQ(r.result.stop_reason, StopReason::kLength);
  EXPECT_EQ(r.result.text, "abc");
  EXPECT_EQ(r.result.n_kept, 3u);
  EXPECT_EQ(r.fed, bytes("ab"));
  EXPECT_EQ(r.result.n_decoded, 2);
  o.max_new_tokens = 0;
  const LoopRun none = run(tok, bytes("abc"), o);
  EXPECT_TRUE(none.result.tokens.empty());
  EXPECT_TRUE(none.result.text.empty());
}

TEST(DecodeLoop, StreamedPiecesConcatenateToTheTextAndAreWholeCharacters) {
  const PieceTokenizer tok({"caf", " ok"});
  // "café ☃ ok" with é and ☃ as byte tokens; a stop string that never completes ("ok!") holds " ok" back to
  // the end, where it is flushed.
  std::vector<std::int32_t> script = {tok.id_of("caf")};
  for (auto v : {bytes("\xC3\xA9 \xE2\x98\x83")}) script.insert(script.end(), v.begin(), v.end());
  script.push_back(tok.id_of(" ok"));
  DecodeOptions o;
  o.max_new_tokens = static_cast<std::int64_t>(script.size());
  o.stop_strings = {" ok!"};
  const LoopRun r = run(tok, script, o);
  EXPECT_EQ(r.result.stop_reason, StopReason::kLength);
  EXPECT_EQ(r.result.text, "caf\xC3\xA9 \xE2\x98\x83 ok");
  EXPECT_EQ(join(r.pieces), r.result.text);
  for (const std::string& p : r.pieces) {
    EXPECT_EQ(incomplete_utf8_tail(p), 0u) << "a piece ends inside a character";
    EXPECT_NE(static_cast<unsigned char>(p[0]) & 0xC0, 0x80) << "a piece starts inside a character";
  }
  EXPECT_EQ(r.pieces.back(), " ok");
  EXPECT_EQ(r.result.n_kept, script.size());
}

TEST(DecodeLoop, OnTokenSeesTheSampledTokensAndStopStringsNeedADetokenizer) {
  const PieceTokenizer tok;
  Script s(tok, bytes("xyz"));
  Sampler greedy(greedy_sampling());
  DecodeOptions o;
  o.max_new_tokens = 3;
  std::vector<std::int32_t> seen;
  o.on_token = [&](std::int32_t t) { seen.push_back(t); };
  const std::span<const float> first = s.logits(0);
  const DecodeResult r = decode_loop(std::vector<float>(first.begin(), first.end()), greedy, s.step(), o);
  EXPECT_EQ(seen, bytes("xyz"));
  EXPECT_TRUE(r.text.empty());
  o.stop_strings = {"z"};
  EXPECT_THROW(decode_loop(std::vector<float>(first.begin(), first.end()), greedy, s.step(), o), Error);
}

}  // namespace
}  // namespace zebra
