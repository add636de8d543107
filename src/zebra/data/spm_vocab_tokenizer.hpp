// SentencePiece-style BPE from a VocabData (GGUF tokenizer model "llama"; a Hugging Face tokenizer.json
// BPE with byte_fallback such as Llama 2's), as llama.cpp's llm_tokenizer_spm: a space is prefixed to
// raw text at the start and after special tokens (add_space_prefix), spaces become U+2581 "▁", the
// characters merge pairwise -- by the score of the merged token (highest first) or, where the
// vocabulary has merges, by merge rank -- and a character left without a token becomes its <0xNN>
// byte tokens (else the unknown token). As in SentencePiece, a literal "▁" in the text is not told
// apart from a space: it decodes as ' '.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/bpe_merge.hpp"
#include "zebra/data/vocab_tokenizer.hpp"

namespace zebra {

class SpmVocabTokenizer : public VocabTokenizer {
 public:
  // vocab.model must be "llama"; it needs scores (one per token) or merges.
  SpmVocabTokenizer(VocabData vocab, const std::string& name);

  std::string file_name() const override { return "tokenizer.json"; }
  // A Hugging Face tokenizer.json (BPE with byte_fallback; merges derived from the scores when the
  // vocabulary has none), see data/tokenizer_json.hpp, and tokenizer_config.json beside it.
  void save(const std::string& path) const override;

  bool add_space_prefix() const { return add_space_prefix_; }
  bool uses_merges() const { return !merges_.empty(); }

 protected:
  void encode_raw(std::string_view text, bool after_special, std::vector<std::int32_t>& out) const override;

 private:
  // Id of a token that text may merge into (normal tokens), or -1.
  std::int32_t mergeable_id(std::string_view text) const;

  bool add_space_prefix_ = true;
  MergeTable merges_;
  std::array<std::int32_t, 256> byte_ids_{};  // byte -> its <0xNN> token, -1 where none
};

}  // namespace zebra
