#include "zebra/data/special_tokens.hpp"

#include <algorithm>

namespace zebra {

SpecialTokenMatcher::SpecialTokenMatcher(const VocabData& vocab) {
  for (std::size_t id = 0; id < vocab.token_types.size() && id < vocab.tokens.size(); ++id) {
    const auto type = static_cast<TokenType>(vocab.token_types[id]);
    const bool user = type == TokenType::kUserDefined;
    if (!user && type != TokenType::kControl && type != TokenType::kUnknown) continue;
    const std::string& t = vocab.tokens[id];
    if (t.empty()) continue;
    by_first_byte_[static_cast<unsigned char>(t[0])].push_back(Entry{t, static_cast<std::int32_t>(id), user});
    any_ = true;
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
  }
}

std::vector<SpecialTokenMatcher::Segment> SpecialTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Segment> out;
  if (!any_) {
    if (!text.empty()) out.push_back(Segment{text, -1});
    return out;
  }
  std::size_t raw_begin = 0, at = 0;
  while (at < text.size()) {
    const Entry* hit = nullptr;
    for (const Entry& e : by_first_byte_[static_cast<unsigned char>(text[at])]) {
      if ((e.always || parse_special) && text.substr(at, e.text.size()) == e.text) {
        hit = &e;
        break;
      }
    }
    if (hit == nullptr) {
      ++at;
      continue;
    }
    if (at > raw_begin) out.push_back(Segment{text.substr(raw_begin, at - raw_begin), -1});
    out.push_back(Segment{text.substr(at, hit->text.size()), hit->id});
    at += hit->text.size();
    raw_begin = at;
  }
  if (raw_begin < text.size()) out.push_back(Segment{text.substr(raw_begin), -1});
  return out;
}

}  // namespace zebra
