#include "zebra/generate/stop_strings.hpp"

#include <algorithm>

#include "zebra/generate/utf8.hpp"

namespace zebra {

namespace {

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
std::size_t partial_suffix(const std::string& text, const std::string& stop) {
  const std::size_t max_len = std::min(text.size(), stop.empty() ? 0 : stop.size() - 1);
  for (std::size_t len = max_len; len > 0; --len) {
    if (text.compare(text.size() - len, len, stop, 0, len) == 0) return len;
  }
  return 0;
}

}  // namespace

StopStringFilter::StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

std::string StopStringFilter::update(const std::string& text) {
  if (stopped_) return {};
  // A stop string that ends in the new text starts at or after emitted_ - (longest - 1): earlier text was
  // emitted only when no stop string could start there.
  const std::size_t from = emitted_ >= longest_ ? emitted_ - longest_ + 1 : 0;
  std::size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    const std::size_t at = text.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  std::string out;
  if (cut != std::string::npos) {
    stopped_ = true;
    if (cut > emitted_) out = text.substr(emitted_, cut - emitted_);
    emitted_ = std::max(emitted_, cut);
    return out;
  }
  std::size_t hold = incomplete_utf8_tail(text);
  for (const std::string& s : stops_) hold = std::max(hold, partial_suffix(text, s));
  const std::size_t safe = text.size() - hold;
  if (safe > emitted_) {
    out = text.substr(emitted_, safe - emitted_);
    emitted_ = safe;
  }
  return out;
}

std::string StopStringFilter::flush(const std::string& text) {
  if (stopped_ || text.size() <= emitted_) return {};
  std::string out = text.substr(emitted_);
  emitted_ = text.size();
  return out;
}

}  // namespace zebra
