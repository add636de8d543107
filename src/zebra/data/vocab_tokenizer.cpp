#include "zebra/data/vocab_tokenizer.hpp"

#include <cmath>

#include "zebra/data/bpe_tokenizer.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/data/spm_vocab_tokenizer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Far above any real vocabulary (Gemma's 262144), far below where sizes overflow int32 ids.
constexpr std::size_t kMaxVocab = std::size_t{1} << 24;

VocabData validated(VocabData v, const std::string& name) {
  const std::size_t n = v.tokens.size();
  ZEBRA_CHECK(n > 0 && n <= kMaxVocab, "vocabulary '", name, "': ", n, " tokens (expected 1..", kMaxVocab, ")");
  ZEBRA_CHECK(v.token_types.empty() || v.token_types.size() == n, "vocabulary '", name, "': ", v.token_types.size(),
              " token types for ", n, " tokens (expected one per token)");
  ZEBRA_CHECK(v.scores.empty() || v.scores.size() == n, "vocabulary '", name, "': ", v.scores.size(), " scores for ", n,
              " tokens (expected one per token)");
  for (std::size_t i = 0; i < v.token_types.size(); ++i) {
    ZEBRA_CHECK(v.token_types[i] >= 0 && v.token_types[i] <= static_cast<std::int32_t>(TokenType::kByte),
                "vocabulary '", name, "': token ", i, " has type ", v.token_types[i], " (expected 0..6)");
  }
  for (std::size_t i = 0; i < v.scores.size(); ++i) {
    ZEBRA_CHECK(std::isfinite(v.scores[i]), "vocabulary '", name, "': token ", i, " has a non-finite score");
  }
  const std::pair<const char*, std::int32_t> ids[] = {
      {"bos_id", v.bos_id}, {"eos_id", v.eos_id}, {"unk_id", v.unk_id}, {"pad_id", v.pad_id}};
  for (const auto& [field, id] : ids) {
    ZEBRA_CHECK(id >= -1 && id < static_cast<std::int64_t>(n), "vocabulary '", name, "': ", field, " ", id,
                " (expected -1 or an id below ", n, ")");
  }
  if (v.token_types.empty()) v.token_types.assign(n, static_cast<std::int32_t>(TokenType::kNormal));
  return v;
}

}  // namespace

VocabTokenizer::VocabTokenizer(VocabData vocab, std::string name, bool default_add_bos)
    : vocab_(validated(std::move(vocab), name)), name_(std::move(name)), special_(vocab_) {
  for (std::size_t id = 0; id < vocab_.tokens.size(); ++id) {
    index_.emplace(vocab_.tokens[id], static_cast<std::int32_t>(id));  // keeps the first (lowest) id
  }
  add_bos_ = vocab_.add_bos.value_or(default_add_bos && vocab_.bos_id >= 0);
  add_eos_ = vocab_.add_eos.value_or(false);
  if (add_bos_) ZEBRA_CHECK(vocab_.bos_id >= 0, "vocabulary '", name_, "' asks for BOS but has no bos_id");
  if (add_eos_) ZEBRA_CHECK(vocab_.eos_id >= 0, "vocabulary '", name_, "' asks for EOS but has no eos_id");
  pieces_ = vocab_.tokens;
}

void VocabTokenizer::check_id(std::int32_t id) const {
  ZEBRA_CHECK(id >= 0 && static_cast<std::size_t>(id) < vocab_.tokens.size(), "tokenizer '", name_, "': token id ", id,
              " out of range [0, ", vocab_.tokens.size(), ")");
}

TokenType VocabTokenizer::token_type(std::int32_t id) const {
  check_id(id);
  return static_cast<TokenType>(vocab_.token_types[static_cast<std::size_t>(id)]);
}

std::int32_t VocabTokenizer::token_id(std::string_view text) const {
  auto it = index_.find(text);
  return it == index_.end() ? -1 : it->second;
}

std::vector<std::int32_t> VocabTokenizer::encode(std::string_view text, bool parse_special) const {
  std::string clean;
  text = as_valid_utf8(text, clean);
  std::vector<std::int32_t> out;
  bool after_special = true;
  for (const auto& seg : special_.split(text, parse_special)) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      after_special = true;
    } else {
      encode_raw(seg.text, after_special, out);
      after_special = false;
    }
  }
  return out;
}

std::string VocabTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  bool after_special = true;
  for (std::int32_t id : ids) {
    check_id(id);
    if (id == vocab_.bos_id || id == vocab_.eos_id || id == vocab_.pad_id) {
      after_special = true;
      continue;
    }
    const TokenType t = token_type(id);
    std::string_view p = pieces_[static_cast<std::size_t>(id)];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      out.append(p);
      after_special = true;
      continue;
    }
    if (after_special && strip_space_after_special_ && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    out.append(p);
    after_special = false;
  }
  return out;
}

std::string VocabTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return pieces_[static_cast<std::size_t>(id)];
}

std::unique_ptr<VocabTokenizer> make_vocab_tokenizer(VocabData vocab, const std::string& name) {
  if (vocab.model == "gpt2") return std::make_unique<BpeTokenizer>(std::move(vocab), name);
  if (vocab.model == "llama") return std::make_unique<SpmVocabTokenizer>(std::move(vocab), name);
  fail("vocabulary '", name, "': tokenizer model '", vocab.model.substr(0, 40),
       "' is not supported (expected gpt2 or llama)");
}

}  // namespace zebra
