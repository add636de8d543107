// A tokenizer's vocabulary as plain data, apart from the file it came from (GGUF metadata, a Hugging Face
// tokenizer.json): what data/ needs to build a tokenizer (data/bpe_tokenizer.hpp). io/ readers fill it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zebra {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class TokenType : std::int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, </s>, <|im_start|>: never produced by splitting text; matched whole in chat text
  kUserDefined = 4,  // added tokens matched whole in text
  kUnused = 5,
  kByte = 6,  // <0xAB> byte-fallback tokens of SentencePiece vocabularies
};

struct VocabData {
  // "gpt2": byte-level BPE over merges; "llama": SentencePiece-style BPE over scores with byte fallback.
  std::string model;
  // Pre-tokenizer name (tokenizer.ggml.pre): "default", "gpt-2", "llama-bpe", "smollm", "starcoder", "qwen2", ...
  std::string pre;
  std::vector<std::string> tokens;        // id -> text (byte-level BPE: in GPT-2's byte-to-unicode alphabet)
  std::vector<float> scores;              // per id, "llama" merge priority; empty when absent
  std::vector<std::int32_t> token_types;  // per id, TokenType values; empty when absent (all normal)
  std::vector<std::string> merges;        // "gpt2": "left right" pairs in rank order
  std::int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: none
  std::optional<bool> add_bos, add_eos;                             // unset: the model type's default
  std::optional<bool> add_space_prefix;  // "llama": prepend a space before the first word (default true)
  std::string chat_template;             // tokenizer.chat_template (a Jinja string), "" when absent
};

}  // namespace zebra
