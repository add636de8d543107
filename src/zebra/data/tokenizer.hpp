// The tokenizer interface every vocabulary format implements (SentencePiece .model, llama2.c
// tokenizer.bin, GGUF vocabularies).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text to ids, without BOS/EOS (callers add them, see add_bos()). Control tokens spelled out in
  // the text (<|im_start|>) stay text; added (user-defined) tokens are matched whole.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  // As encode(), but control tokens spelled out in the text become those tokens: for chat templates.
  // Formats without such tokens: encode(text).
  virtual std::vector<std::int32_t> encode_special(std::string_view text) const { return encode(text); }
  // Whether the vocabulary wants BOS in front of / EOS after a sequence (callers add them).
  virtual bool add_bos() const { return true; }
  virtual bool add_eos() const { return false; }
  // Ids to text; decode(encode(s)) == s for valid UTF-8 s.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  // The text of one token as it appears in a stream of decoded tokens (for streaming output).
  virtual std::string piece(std::int32_t id) const = 0;
  virtual std::int64_t vocab_size() const = 0;
  virtual std::int32_t bos_id() const = 0;
  virtual std::int32_t eos_id() const = 0;
  // File name it is saved under inside a checkpoint directory ("tokenizer.model", "tokenizer.bin",
  // "tokenizer.json").
  virtual std::string file_name() const = 0;
  // Writes the tokenizer file to `path`.
  virtual void save(const std::string& path) const = 0;
  // The model's chat template as a Jinja string (GGUF tokenizer.chat_template, Hugging Face
  // tokenizer_config.json), "" when the vocabulary carries none.
  virtual std::string chat_template() const { return {}; }
};

// Loads a tokenizer by file type: a SentencePiece model ("*.model"), a llama2.c "tokenizer.bin" or a
// Hugging Face "tokenizer.json" (data/tokenizer_json.hpp; any other name is sniffed by content).
// Throws naming the path and the formats tried.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace zebra
