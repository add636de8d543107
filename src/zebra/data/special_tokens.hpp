// Special tokens spelled out in text (<|im_start|>, <s>, added words): found before pre-tokenization
// and turned into their ids whole, so that no merge ever crosses them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/vocab.hpp"

namespace zebra {

class SpecialTokenMatcher {
 public:
  // Collects the vocabulary's kUserDefined tokens (always matched, as added tokens are in Hugging Face
  // tokenizers and llama.cpp) and its kControl and kUnknown tokens (matched when asked to).
  explicit SpecialTokenMatcher(const VocabData& vocab);

  struct Segment {
    std::string_view text;
    std::int32_t id;  // -1: raw text to tokenize
  };
  // Cuts `text` into raw text and special tokens, scanning left to right and taking the longest token
  // that starts at each position (HF's leftmost-longest). Raw segments are never empty.
  std::vector<Segment> split(std::string_view text, bool parse_special) const;

 private:
  struct Entry {
    std::string text;
    std::int32_t id;
    bool always;
  };
  std::array<std::vector<Entry>, 256> by_first_byte_;  // each sorted by decreasing length
  bool any_ = false;
};

}  // namespace zebra
