// Hugging Face tokenizer.json files (model type BPE) <-> VocabData: byte-level BPE (a ByteLevel
// pre-tokenizer, with Split / Digits stages before it: GPT-2, Llama 3, Qwen2, SmolLM2) becomes model
// "gpt2" with its regexes; BPE with byte_fallback and "▁" spaces (Llama 2) becomes model "llama" with
// merges. BOS/EOS, add_bos/add_eos and the chat template come from a tokenizer_config.json beside the
// file when there is one (the post-processor's template says add_bos/add_eos otherwise).
//
// The file is untrusted: its size, nesting depth, token count and ids are bounded and checked before
// anything is sized by them; errors name the file, the field, the value (shortened) and what was
// expected. Not supported (refused, naming the field): other model types (WordPiece, Unigram),
// dropout, subword prefixes/suffixes, Split behaviours other than "Isolated", inverted splits.
// Accepted but not applied: an NFC normalizer (text already in NFC, as nearly all text is, is
// unaffected; llama.cpp skips it too), Metaspace's split flag and prepend_scheme "first" (a space is
// prefixed after special tokens too, as llama.cpp does).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "zebra/data/bpe_tokenizer.hpp"
#include "zebra/data/vocab.hpp"
#include "zebra/data/vocab_tokenizer.hpp"

namespace zebra {

struct TokenizerJson {
  VocabData vocab;
  ByteLevelOptions byte_level;  // model "gpt2" only
};

// Parses the text of a tokenizer.json and (optional, "" for none) of its tokenizer_config.json;
// `name` appears in errors.
TokenizerJson parse_tokenizer_json(std::string_view json, const std::string& name, std::string_view config = "");
// Reads `path` and the tokenizer_config.json in the same folder, if present.
TokenizerJson read_tokenizer_json(const std::string& path);
// read_tokenizer_json + the tokenizer its model names.
std::unique_ptr<VocabTokenizer> load_tokenizer_json(const std::string& path);
// Whether `bytes` look like a tokenizer.json: a JSON object (first non-space byte '{') naming "model".
bool looks_like_tokenizer_json(std::string_view bytes);

// tokenizer.json texts that HF tokenizers reads as the same tokenizer.
std::string bpe_tokenizer_json(const VocabData& vocab, const ByteLevelOptions& options);
// BPE with byte_fallback; merges are the vocabulary's, or derived from its scores (every split of a
// token into two tokens, ordered by the token's score, highest first: the pair SentencePiece's merge
// loop would pick first gets the lowest rank; only pairs whose merged tokens have equal scores may
// come out differently).
std::string spm_tokenizer_json(const VocabData& vocab, bool add_space_prefix);
// tokenizer_config.json: bos/eos/unk/pad tokens, add_bos_token/add_eos_token, chat_template.
std::string tokenizer_config_json(const VocabData& vocab);
// Writes `json` to `path` and tokenizer_config_json(vocab) to tokenizer_config.json beside it,
// each atomically.
void save_tokenizer_json(const std::string& path, const std::string& json, const VocabData& vocab);

}  // namespace zebra
