#include "zebra/data/bpe_tokenizer.hpp"

#include <array>

#include "zebra/data/bpe_merge.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

constexpr std::size_t kCacheEntries = std::size_t{1} << 16;
constexpr std::size_t kCacheWordBytes = 256;

bool printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {  // the alphabet stays below U+0800; the general case is not needed
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct ByteAlphabet {
  std::array<std::string, 256> encoded;     // byte -> UTF-8 of its character
  std::array<std::int16_t, 0x144> decoded;  // code point (< U+0144) -> byte, -1 where none
  ByteAlphabet() {
    decoded.fill(-1);
    std::uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const std::uint32_t cp = printable(b) ? static_cast<std::uint32_t>(b) : next++;
      append_utf8(encoded[static_cast<std::size_t>(b)], cp);
      decoded[cp] = static_cast<std::int16_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;  // immutable once built
  return a;
}

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
  const ByteAlphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.encoded[static_cast<unsigned char>(c)];
  return out;
}

std::string byte_level_decode(std::string_view text) {
  const ByteAlphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const auto c0 = static_cast<unsigned char>(text[at]);
    std::uint32_t cp = c0;
    std::size_t len = 1;
    if (c0 >= 0xC0 && c0 < 0xE0 && at + 1 < text.size()) {
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<unsigned char>(text[at + 1]) & 0x3Fu);
      len = 2;
    } else if (c0 >= 0xE0) {
      len = c0 < 0xF0 ? 3 : 4;
      cp = 0x800;  // outside the alphabet
    }
    len = std::min(len, text.size() - at);
    if (cp < a.decoded.size() && a.decoded[cp] >= 0) {
      out += static_cast<char>(a.decoded[cp]);
    } else {
      out.append(text.substr(at, len));
    }
    at += len;
  }
  return out;
}

BpeTokenizer::BpeTokenizer(VocabData vocab, const std::string& name, ByteLevelOptions options)
    : VocabTokenizer(std::move(vocab), name, /*default_add_bos=*/false), options_(std::move(options)),
      splitter_(options_.regexes ? *options_.regexes : pre_tokenizer_regexes(vocab_.pre)) {
  ZEBRA_CHECK(vocab_.model == "gpt2", "vocabulary '", name_, "': model '", bounded(vocab_.model),
              "' is not byte-level BPE (expected gpt2)");
  options_.regexes = splitter_.patterns();
  ignore_merges_ = options_.ignore_merges.value_or(pre_tokenizer_ignores_merges(vocab_.pre));
  merges_ = MergeTable(
      vocab_.merges, [this](std::string_view t) { return token_id(t); }, name_);
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    const auto t = static_cast<TokenType>(vocab_.token_types[id]);
    if (t != TokenType::kControl && t != TokenType::kUserDefined && t != TokenType::kUnknown) {
      pieces_[id] = byte_level_decode(vocab_.tokens[id]);
    }
  }
}

void BpeTokenizer::encode_raw(std::string_view text, bool /*after_special*/, std::vector<std::int32_t>& out) const {
  std::string prefixed;
  if (options_.add_prefix_space && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  for (std::string_view word : splitter_.split(text)) encode_word(byte_level_encode(word), out);
}

void BpeTokenizer::encode_word(std::string_view mapped, std::vector<std::int32_t>& out) const {
  const bool cacheable = mapped.size() <= kCacheWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(mapped));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> ids;
  const std::int32_t whole = ignore_merges_ ? token_id(mapped) : -1;
  if (whole >= 0) {
    ids.push_back(whole);
  } else {
    std::vector<MergeSymbol> symbols = utf8_symbols(mapped, [this](std::string_view s) { return token_id(s); });
    merge_symbols(mapped, symbols,
                  [this](std::string_view, std::int32_t l, std::string_view, std::int32_t r, double* key,
                         std::int32_t* merged) { return merges_.find(l, r, key, merged); });
    for (const MergeSymbol& s : symbols) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      ZEBRA_CHECK(vocab_.unk_id >= 0, "tokenizer '", name_, "': the byte-level character '",
                  std::string(mapped.substr(s.begin, s.end - s.begin)),
                  "' is not a token and there is no unknown token");
      ids.push_back(vocab_.unk_id);
    }
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(std::string(mapped), std::move(ids));
  }
}

void BpeTokenizer::save(const std::string& path) const {
  save_tokenizer_json(path, bpe_tokenizer_json(vocab_, options_), vocab_);
}

}  // namespace zebra
