#include "zebra/generate/detokenizer.hpp"

#include <algorithm>
#include <string_view>

#include "zebra/generate/utf8.hpp"

namespace zebra {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool final_text(std::string_view fresh) {
  return !fresh.empty() && incomplete_utf8_tail(fresh) == 0 && !fresh.ends_with(kReplacement);
}

}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, std::span<const std::int32_t> context)
    : tok_(&tokenizer) {
  const std::size_t n = std::min(context.size(), kContextTokens);
  ids_.assign(context.end() - static_cast<std::ptrdiff_t>(n), context.end());
  read_ = ids_.size();
  if (!ids_.empty()) prefix_text_ = tok_->decode(ids_);
}

std::string StreamingDetokenizer::feed(std::int32_t id) {
  ids_.push_back(id);
  const std::string all = tok_->decode(ids_);
  if (!all.starts_with(prefix_text_)) {
    // The new id changed text already shown (not seen with SentencePiece or llama2.c vocabularies): wait,
    // the window grows until it extends the shown text again.
    pending_bytes_ = 0;
    return {};
  }
  const std::string_view fresh = std::string_view(all).substr(prefix_text_.size());
  if (!final_text(fresh)) {
    pending_bytes_ = fresh.size();
    return {};
  }
  std::string out(fresh);
  text_ += out;
  pending_bytes_ = 0;
  // Slide the window to start at the chunk just emitted when that chunk decodes on its own to the text it
  // showed, up to a dropped leading space, and to something non-empty (after an empty text a tokenizer
  // would drop the next leading space again). Otherwise keep the window's start and let it grow.
  const std::vector<std::int32_t> chunk(ids_.begin() + static_cast<std::ptrdiff_t>(read_), ids_.end());
  std::string alone = tok_->decode(chunk);
  const bool same = alone == out || (out.size() == alone.size() + 1 && out[0] == ' ' && out.ends_with(alone));
  if (!alone.empty() && same) {
    ids_ = chunk;
    prefix_text_ = std::move(alone);
  } else {
    prefix_text_ = all;
  }
  read_ = ids_.size();
  return out;
}

std::string StreamingDetokenizer::flush() {
  if (read_ == ids_.size()) return {};
  const std::string all = tok_->decode(ids_);
  std::string out;
  if (all.starts_with(prefix_text_)) out = all.substr(prefix_text_.size());
  text_ += out;
  pending_bytes_ = 0;
  prefix_text_ = all;
  read_ = ids_.size();
  return out;
}

}  // namespace zebra
