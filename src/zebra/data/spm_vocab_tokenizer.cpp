#include "zebra/data/spm_vocab_tokenizer.hpp"

#include "zebra/data/piece_text.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

SpmVocabTokenizer::SpmVocabTokenizer(VocabData vocab, const std::string& name)
    : VocabTokenizer(std::move(vocab), name, /*default_add_bos=*/true) {
  ZEBRA_CHECK(vocab_.model == "llama", "vocabulary '", name_, "': model '", bounded(vocab_.model),
              "' is not SentencePiece-style (expected llama)");
  ZEBRA_CHECK(!vocab_.scores.empty() || !vocab_.merges.empty(), "vocabulary '", name_,
              "': model llama needs scores or merges (it has neither)");
  add_space_prefix_ = vocab_.add_space_prefix.value_or(true);
  strip_space_after_special_ = add_space_prefix_;
  if (!vocab_.merges.empty())
    merges_ = MergeTable(
        vocab_.merges, [this](std::string_view t) { return token_id(t); }, name_);
  byte_ids_.fill(-1);
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    const auto t = static_cast<TokenType>(vocab_.token_types[id]);
    const int b = byte_piece_value(vocab_.tokens[id]);
    if (b >= 0 && (t == TokenType::kByte || t == TokenType::kNormal || t == TokenType::kUndefined)) {
      if (byte_ids_[static_cast<std::size_t>(b)] < 0)
        byte_ids_[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(id);
      pieces_[id] = std::string(1, static_cast<char>(b));
    } else if (t != TokenType::kControl && t != TokenType::kUserDefined && t != TokenType::kUnknown) {
      pieces_[id] = replace_all(vocab_.tokens[id], kSpaceSymbol, " ");
    }
  }
}

std::int32_t SpmVocabTokenizer::mergeable_id(std::string_view text) const {
  const std::int32_t id = token_id(text);
  if (id < 0) return -1;
  const auto t = static_cast<TokenType>(vocab_.token_types[static_cast<std::size_t>(id)]);
  return t == TokenType::kNormal || t == TokenType::kUndefined ? id : -1;
}

void SpmVocabTokenizer::encode_raw(std::string_view text, bool after_special, std::vector<std::int32_t>& out) const {
  std::string s;
  if (add_space_prefix_ && after_special) s.append(kSpaceSymbol);
  s.append(replace_all(text, " ", kSpaceSymbol));
  std::vector<MergeSymbol> symbols = utf8_symbols(s, [this](std::string_view c) { return mergeable_id(c); });
  if (uses_merges()) {
    merge_symbols(s, symbols,
                  [this](std::string_view, std::int32_t l, std::string_view, std::int32_t r, double* key,
                         std::int32_t* merged) { return merges_.find(l, r, key, merged); });
  } else {
    merge_symbols(s, symbols,
                  [this](std::string_view left, std::int32_t, std::string_view right, std::int32_t, double* key,
                         std::int32_t* merged) {
                    // Adjacent symbols are adjacent views into `s`: their concatenation is one view.
                    const std::int32_t id = mergeable_id(std::string_view(left.data(), left.size() + right.size()));
                    if (id < 0) return false;
                    *key = -static_cast<double>(vocab_.scores[static_cast<std::size_t>(id)]);  // highest score first
                    *merged = id;
                    return true;
                  });
  }
  for (const MergeSymbol& sym : symbols) {
    if (sym.id >= 0) {
      out.push_back(sym.id);
      continue;
    }
    bool bytes = true;
    for (std::uint32_t i = sym.begin; i < sym.end; ++i)
      bytes = bytes && byte_ids_[static_cast<unsigned char>(s[i])] >= 0;
    if (bytes) {
      for (std::uint32_t i = sym.begin; i < sym.end; ++i) out.push_back(byte_ids_[static_cast<unsigned char>(s[i])]);
      continue;
    }
    ZEBRA_CHECK(vocab_.unk_id >= 0, "tokenizer '", name_, "': the character '",
                s.substr(sym.begin, sym.end - sym.begin),
                "' has no token, no byte tokens and there is no unknown token");
    out.push_back(vocab_.unk_id);  // one per character
  }
}

void SpmVocabTokenizer::save(const std::string& path) const {
  save_tokenizer_json(path, spm_tokenizer_json(vocab_, add_space_prefix_), vocab_);
}

}  // namespace zebra
