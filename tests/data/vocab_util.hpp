// Hand-made vocabularies for the VocabData tokenizers' tests.
#pragma once

#include <string>
#include <vector>

#include "zebra/data/bpe_tokenizer.hpp"
#include "zebra/data/vocab.hpp"

namespace zebra::test {

// Byte-level: the 256 byte characters (id = byte), then each merge's result in order, then
// `specials` as control tokens and `added` as user-defined ones. Merges are in plain text and are
// written in the byte-level alphabet here ("a b", " w" -> "Ġ w").
inline VocabData byte_level_vocab(const std::vector<std::pair<std::string, std::string>>& merges,
                                  const std::vector<std::string>& specials = {},
                                  const std::vector<std::string>& added = {}) {
  VocabData v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
  for (const auto& [l, r] : merges) {
    v.merges.push_back(byte_level_encode(l) + " " + byte_level_encode(r));
    v.tokens.push_back(byte_level_encode(l + r));
  }
  v.token_types.assign(v.tokens.size(), static_cast<std::int32_t>(TokenType::kNormal));
  for (const auto& s : specials) {
    v.tokens.push_back(s);
    v.token_types.push_back(static_cast<std::int32_t>(TokenType::kControl));
  }
  for (const auto& s : added) {
    v.tokens.push_back(s);
    v.token_types.push_back(static_cast<std::int32_t>(TokenType::kUserDefined));
  }
  return v;
}

// SentencePiece-style: <unk> <s> </s>, then `pieces` with their scores ("▁" for spaces), then the
// 256 byte tokens <0x00>.. when `byte_fallback`.
inline VocabData spm_vocab(const std::vector<std::pair<std::string, float>>& pieces, bool byte_fallback = true) {
  VocabData v;
  v.model = "llama";
  v.pre = "default";
  auto add = [&](const std::string& t, float score, TokenType type) {
    v.tokens.push_back(t);
    v.scores.push_back(score);
    v.token_types.push_back(static_cast<std::int32_t>(type));
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  for (const auto& [p, s] : pieces) add(p, s, TokenType::kNormal);
  if (byte_fallback) {
    const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 0, TokenType::kByte);
  }
  return v;
}

// A small SentencePiece-style vocabulary with competing merges: ids 3 "▁", 4 "a", 5 "b", 6 "▁a", 7 "ab",
// 8 "▁ab", 9 "c", 10 "bc"; then the byte tokens from 11.
inline VocabData small_spm_vocab() {
  return spm_vocab({{"\xE2\x96\x81", -1},
                    {"a", -2},
                    {"b", -3},
                    {"\xE2\x96\x81"
                     "a",
                     -4},
                    {"ab", -5},
                    {"\xE2\x96\x81"
                     "ab",
                     -6},
                    {"c", -7},
                    {"bc", -4.5f}});
}

}  // namespace zebra::test
