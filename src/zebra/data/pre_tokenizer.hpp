// Pre-tokenizers of byte-level BPE vocabularies: a list of Unicode regexes (PCRE2, UTF + UCP) applied
// in turn, each cutting every piece of the previous stage into its matches and the text between them
// (Hugging Face tokenizers' Split with behaviour "Isolated", which its ByteLevel pre-tokenizer also
// uses). Words never cross a piece boundary, so BPE merges stay inside a piece.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

class RegexSplitter {
 public:
  // Compiles the patterns; throws naming the pattern, the PCRE2 message and the offset.
  explicit RegexSplitter(std::vector<std::string> patterns);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;

  // The pieces of valid UTF-8 `text`, as views into it, in order; their concatenation is `text`.
  // Empty matches are skipped (they would only produce empty pieces). No patterns: `text` whole.
  std::vector<std::string_view> split(std::string_view text) const;
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  struct Compiled;
  std::vector<std::string> patterns_;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

// The regexes of a tokenizer.ggml.pre name, as the Hugging Face tokenizer.json of that family states
// them: "gpt-2" (also "", "default": GPT-2's is the default here), "llama-bpe" (Llama 3; also
// "llama3", "llama-v3"), "qwen2" (also "stablelm2"), "starcoder" / "smollm" (digits split one by one,
// then GPT-2's). Throws for other names, listing these.
std::vector<std::string> pre_tokenizer_regexes(std::string_view pre);
// Whether that family's BPE takes a word that is itself a token whole, before any merge (HF BPE
// ignore_merges, set in Llama 3's tokenizer.json): the Llama 3 names.
bool pre_tokenizer_ignores_merges(std::string_view pre);

}  // namespace zebra
