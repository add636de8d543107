// Byte-level BPE (GGUF tokenizer model "gpt2"; Hugging Face BPE with a ByteLevel pre-tokenizer): text
// is cut at special tokens, then into words by the pre-tokenizer's regexes (data/pre_tokenizer.hpp);
// each word's UTF-8 bytes are written in GPT-2's byte-to-unicode alphabet and merged by merge rank.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zebra/data/bpe_merge.hpp"
#include "zebra/data/pre_tokenizer.hpp"
#include "zebra/data/vocab_tokenizer.hpp"

namespace zebra {

// What a byte-level BPE needs beyond VocabData (a tokenizer.json states it; GGUF names it by `pre`).
struct ByteLevelOptions {
  std::optional<std::vector<std::string>> regexes;  // unset: pre_tokenizer_regexes(vocab.pre)
  bool add_prefix_space = false;      // HF ByteLevel(add_prefix_space): a space before raw text not starting with one
  std::optional<bool> ignore_merges;  // a word that is a token is taken whole; unset: pre_tokenizer_ignores_merges(pre)
};

class BpeTokenizer : public VocabTokenizer {
 public:
  // vocab.model must be "gpt2". Every merge "left right" (rank = its index) must name two tokens whose
  // concatenation is a token; errors name `name`, the merge index and text.
  BpeTokenizer(VocabData vocab, const std::string& name, ByteLevelOptions options = {});

  std::string file_name() const override { return "tokenizer.json"; }
  // A Hugging Face tokenizer.json (data/tokenizer_json.hpp) that `tokenizers` reads as this tokenizer
  // and load_tokenizer() reads back, and tokenizer_config.json beside it (BOS/EOS, chat template).
  void save(const std::string& path) const override;

  const ByteLevelOptions& options() const { return options_; }
  const RegexSplitter& splitter() const { return splitter_; }

 protected:
  void encode_raw(std::string_view text, bool after_special, std::vector<std::int32_t>& out) const override;

 private:
  void encode_word(std::string_view mapped, std::vector<std::int32_t>& out) const;

  ByteLevelOptions options_;
  RegexSplitter splitter_;
  bool ignore_merges_ = false;
  MergeTable merges_;
  // Words seen before -> ids (bounded; cleared when full). Guarded: encode() may run on many threads.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache_;
};

// Bytes -> GPT-2's alphabet: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves, the other 68 bytes for U+0100.. in byte order (space -> 'Ġ', '\n' -> 'Ċ').
std::string byte_level_encode(std::string_view bytes);
// The inverse on valid UTF-8; characters outside the alphabet pass through as their own UTF-8.
std::string byte_level_decode(std::string_view text);

}  // namespace zebra
