// The streaming detokenizer against Tokenizer::decode of the whole list, with llama2.c and SentencePiece
// vocabularies (leading-space rules, byte fallback) and characters split across byte tokens.
#include "zebra/generate/detokenizer.hpp"

#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <memory>
#include <unordered_map>

#include "data/llama2c_vocab.hpp"
#include "data/temp_dir.hpp"
#include "generate/test_tokenizer.hpp"
#include "zebra/data/llama2c_tokenizer.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/generate/utf8.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

// Whether `s` is valid UTF-8 (complete characters only).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// Streams `ids` after `context` and checks, after every id, that the emitted text is a prefix of the
// reference (decode(context + ids so far) after decode(context)) made of whole characters; after flush()
// it must equal the reference of all ids. Returns the pieces.
std::vector<std::string> stream_and_check(const Tokenizer& tok, const std::vector<std::int32_t>& context,
                                          const std::vector<std::int32_t>& ids) {
  StreamingDetokenizer d(tok, context);
  const std::vector<std::int32_t> ctx_tail(
      context.end() - static_cast<std::ptrdiff_t>(std::min(context.size(), StreamingDetokenizer::kContextTokens)),
      context.end());
  const std::string ctx_text = tok.decode(ctx_tail);
  std::vector<std::int32_t> all = ctx_tail;
  std::vector<std::string> pieces;
  std::string joined;
  for (std::int32_t id : ids) {
    all.push_back(id);
    const std::string piece = d.feed(id);
    joined += piece;
    if (!piece.empty()) pieces.push_back(piece);
    const std::string ref = tok.decode(all);
    EXPECT_TRUE(ref.starts_with(ctx_text));
    const std::string want = ref.substr(ctx_text.size());
    EXPECT_TRUE(want.starts_with(joined)) << "emitted '" << joined << "' is not a prefix of '" << want << "'";
    EXPECT_TRUE(valid_utf8(joined)) << "emitted half a character: '" << joined << "'";
    EXPECT_EQ(d.text(), joined);
    EXPECT_EQ(d.decoded_size(), want.size());
  }
  const std::string rest = d.flush();
  joined += rest;
  if (!rest.empty()) pieces.push_back(rest);
  const std::string ref = tok.decode(all);
  EXPECT_EQ(joined, ref.substr(ctx_text.size()));
  return pieces;
}

// llama2.c layout (data/llama2c_vocab.hpp); no piece for the emoji or the euro sign, so they fall back to
// byte tokens.
std::unique_ptr<Llama2cTokenizer> llama2c_tokenizer() {
  const test::Llama2cVocab v =
      test::llama2c_vocab({" t", "he", " the", " a", "an", " an", "nd",       " and", " ",  "a",
                           "b",  "t",  "h",    "e",  "n",  "d",   "\xC3\xA9", " c",   "ca", "f"});
  return std::make_unique<Llama2cTokenizer>(v.pieces, v.scores, 16);
}

const char* kAlphabet[] = {"a",  "b", " ", "t", "h", "e", "n", "d", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                           "\n", "x", "c", "f"};

std::string random_text(Rng& rng, std::size_t max_len) {
  std::string s;
  const std::uint64_t n = 1 + rng.below(max_len);
  for (std::uint64_t k = 0; k < n; ++k) s += kAlphabet[rng.below(sizeof kAlphabet / sizeof kAlphabet[0])];
  return s;
}

TEST(StreamingDetokenizer, Llama2cMultiByteCharactersSplitAcrossByteTokens) {
  const auto tok = llama2c_tokenizer();
  const std::string text = "the caf\xC3\xA9 \xF0\x9F\x98\x80 and \xE2\x82\xAC";
  const std::vector<std::int32_t> ids = tok->encode(text);
  // The emoji is four byte tokens: nothing of it may appear before the fourth.
  std::size_t byte_tokens = 0;
  for (std::int32_t id : ids) byte_tokens += id >= 3 && id < 259;
  ASSERT_GE(byte_tokens, 7u);  // 4 for the emoji, 3 for the euro sign
  const std::vector<std::string> pieces = stream_and_check(*tok, {}, ids);
  std::string joined;
  for (const std::string& p : pieces) joined += p;
  EXPECT_EQ(joined, tok->decode(ids));
  EXPECT_EQ(joined, text);  // the dummy prefix's space is dropped as decode() drops it
  bool emoji_whole = false;
  for (const std::string& p : pieces) emoji_whole |= p.find("\xF0\x9F\x98\x80") != std::string::npos;
  EXPECT_TRUE(emoji_whole);
}

TEST(StreamingDetokenizer, Llama2cAfterAPromptKeepsTheLeadingSpace) {
  const auto tok = llama2c_tokenizer();
  std::vector<std::int32_t> context = {tok->bos_id()};
  for (std::int32_t id : tok->encode("the cat")) context.push_back(id);
  const std::vector<std::int32_t> gen = {tok->lookup(" and"), tok->lookup(" the")};
  const std::vector<std::string> pieces = stream_and_check(*tok, context, gen);
  std::string joined;
  for (const std::string& p : pieces) joined += p;
  EXPECT_EQ(joined, " and the");
  // At the start of a text (BOS only), the first piece loses its space, as decode() does.
  std::string start;
  for (const std::string& p : stream_and_check(*tok, {tok->bos_id()}, gen)) start += p;
  EXPECT_EQ(start, "and the");
}

TEST(StreamingDetokenizer, Llama2cRandomTextsWithAndWithoutContext) {
  const auto tok = llama2c_tokenizer();
  Rng rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    const std::vector<std::int32_t> ctx = tok->encode(random_text(rng, 6));
    const std::vector<std::int32_t> ids = tok->encode(random_text(rng, 30));
    stream_and_check(*tok, {}, ids);
    stream_and_check(*tok, ctx, ids);
  }
}

// A corpus of pseudo-English lines (SentencePiece needs some text to train on).
std::string sp_corpus() {
  static const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then"};
  Rng rng(3);
  std::string s;
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 8; ++w) s += std::string(w ? " " : "") + words[rng.below(10)];
    s += "\n";
  }
  return s;
}

std::unique_ptr<SentencePieceTokenizer> train_sp(const test::TempDir& dir, bool dummy_prefix) {
  test::write_bytes(dir / "corpus.txt", sp_corpus());
  const std::string prefix = dir / (dummy_prefix ? "dp" : "nodp");
  auto status = sentencepiece::SentencePieceTrainer::Train(
      std::unordered_map<std::string, std::string>{{"input", dir / "corpus.txt"},
                                                   {"model_prefix", prefix},
                                                   {"vocab_size", "330"},
                                                   {"byte_fallback", "true"},
                                                   {"model_type", "bpe"},
                                                   {"num_threads", "1"},
                                                   {"minloglevel", "2"},
                                                   {"character_coverage", "1.0"},
                                                   {"add_dummy_prefix", dummy_prefix ? "true" : "false"},
                                                   {"remove_extra_whitespaces", "false"},
                                                   {"normalization_rule_name", "identity"}});
  EXPECT_TRUE(status.ok()) << status.ToString();
  return SentencePieceTokenizer::load(prefix + ".model");
}

TEST(StreamingDetokenizer, SentencePieceWithAndWithoutDummyPrefix) {
  test::TempDir dir;
  for (bool dummy : {true, false}) {
    SCOPED_TRACE(dummy ? "add_dummy_prefix" : "no dummy prefix");
    const auto tok = train_sp(dir, dummy);
    ASSERT_EQ(tok->add_dummy_prefix(), dummy);
    // Characters outside the corpus fall back to byte pieces.
    const std::string text = "the fox \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80 jumps \xE2\x82\xAC\nthen";
    const std::vector<std::int32_t> ids = tok->encode(text);
    std::string joined;
    for (const std::string& p : stream_and_check(*tok, {}, ids)) joined += p;
    EXPECT_EQ(joined, text);
    std::vector<std::int32_t> context = {tok->bos_id()};
    for (std::int32_t id : tok->encode("the lazy")) context.push_back(id);
    stream_and_check(*tok, context, tok->encode(" dog and then"));
    Rng rng(dummy ? 1 : 2);
    for (int trial = 0; trial < 30; ++trial) {
      stream_and_check(*tok, tok->encode(random_text(rng, 5)), tok->encode(random_text(rng, 25)));
    }
  }
}

TEST(StreamingDetokenizer, HoldsAnIncompleteCharacterUntilFlush) {
  test::PieceTokenizer tok;
  StreamingDetokenizer d(tok);
  EXPECT_EQ(d.feed(test::PieceTokenizer::byte_id('a')), "a");
  EXPECT_EQ(d.feed(test::PieceTokenizer::byte_id('\xE2')), "");
  EXPECT_EQ(d.feed(test::PieceTokenizer::byte_id('\x82')), "");
  EXPECT_EQ(d.decoded_size(), 3u);
  EXPECT_EQ(d.flush(), "\xE2\x82");  // the stream ended inside a character: what there is
  EXPECT_EQ(d.text(), "a\xE2\x82");
  EXPECT_EQ(d.flush(), "");
}

}  // namespace
}  // namespace zebra
