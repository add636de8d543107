// What the tokenizers built from a VocabData (GGUF metadata, a Hugging Face tokenizer.json) share:
// validation, the token index, special tokens matched in text, BOS/EOS flags and decoding by pieces.
// The encoders are BpeTokenizer ("gpt2", data/bpe_tokenizer.hpp) and SpmVocabTokenizer ("llama",
// data/spm_vocab_tokenizer.hpp); make_vocab_tokenizer() picks by VocabData::model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "zebra/data/special_tokens.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/data/vocab.hpp"

namespace zebra {

class VocabTokenizer : public Tokenizer {
 public:
  VocabTokenizer(const VocabTokenizer&) = delete;  // the token index holds views into the vocabulary
  VocabTokenizer& operator=(const VocabTokenizer&) = delete;

  // Invalid UTF-8 in `text` is first replaced by U+FFFD (sanitize_utf8), so behaviour is defined.
  std::vector<std::int32_t> encode(std::string_view text) const override { return encode(text, false); }
  std::vector<std::int32_t> encode_special(std::string_view text) const override { return encode(text, true); }
  // parse_special: control (and unknown) tokens spelled out in the text become those tokens.
  std::vector<std::int32_t> encode(std::string_view text, bool parse_special) const;

  // Concatenation of piece(id), except that BOS, EOS and PAD vanish, and with a space prefix
  // (SentencePiece style) the first text piece after the start or a special token loses one leading
  // space, as encode() added it. decode(encode(s)) == s for valid UTF-8 s; also for encode_special(s)
  // unless s spells out BOS, EOS or PAD.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  // The bytes of one token: byte-level or "▁" text decoded, <0xNN> as the byte, special tokens as
  // their text. Bytes of a UTF-8 character may be split across tokens (a streaming consumer holds back
  // an incomplete character).
  std::string piece(std::int32_t id) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(vocab_.tokens.size()); }
  std::int32_t bos_id() const override { return vocab_.bos_id; }
  std::int32_t eos_id() const override { return vocab_.eos_id; }
  std::int32_t unk_id() const { return vocab_.unk_id; }
  bool add_bos() const override { return add_bos_; }
  bool add_eos() const override { return add_eos_; }
  std::string chat_template() const override { return vocab_.chat_template; }

  const VocabData& vocab() const { return vocab_; }
  TokenType token_type(std::int32_t id) const;
  // Id of a token text (the lowest id where texts repeat), or -1.
  std::int32_t token_id(std::string_view text) const;

 protected:
  // Validates `vocab` (errors name `name` and the field); unset add_bos falls back to
  // `default_add_bos` where there is a BOS token, unset add_eos to false.
  VocabTokenizer(VocabData vocab, std::string name, bool default_add_bos);
  // Appends the ids of one stretch of raw text (non-empty valid UTF-8, no special tokens in it);
  // `after_special`: it starts the text or follows a special token.
  virtual void encode_raw(std::string_view text, bool after_special, std::vector<std::int32_t>& out) const = 0;
  void check_id(std::int32_t id) const;

  VocabData vocab_;
  std::string name_;
  std::vector<std::string> pieces_;  // id -> bytes, filled by the derived constructor
  bool strip_space_after_special_ = false;

 private:
  std::unordered_map<std::string_view, std::int32_t> index_;
  SpecialTokenMatcher special_;
  bool add_bos_ = false, add_eos_ = false;
};

// A BpeTokenizer for model "gpt2" (pre-tokenizer from VocabData::pre), an SpmVocabTokenizer for
// "llama"; throws for other models naming `name`.
std::unique_ptr<VocabTokenizer> make_vocab_tokenizer(VocabData vocab, const std::string& name);

}  // namespace zebra
