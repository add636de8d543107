// A small Tokenizer for the generation tests: id 0 <unk>, 1 BOS, 2 EOS, 3 .. 258 the bytes, then extra
// pieces (words, special tokens such as "<|im_end|>"). encode() takes the longest piece at each position
// (so special tokens and words are single tokens), decode() concatenates, BOS and EOS decode to nothing.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/tokenizer.hpp"
#include "zebra/util/error.hpp"

namespace zebra::test {

class PieceTokenizer : public Tokenizer {
 public:
  explicit PieceTokenizer(std::vector<std::string> extra = {}, std::string chat_template = {})
      : chat_template_(std::move(chat_template)) {
    pieces_ = {"<unk>", "", ""};
    for (int b = 0; b < 256; ++b) pieces_.emplace_back(1, static_cast<char>(b));
    for (std::string& p : extra) pieces_.push_back(std::move(p));
  }
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    std::size_t at = 0;
    while (at < text.size()) {
      std::int32_t best = 3 + static_cast<unsigned char>(text[at]);
      std::size_t best_len = 1;
      for (std::size_t id = 259; id < pieces_.size(); ++id) {
        const std::string& p = pieces_[id];
        if (p.size() > best_len && text.substr(at, p.size()) == p) {
          best = static_cast<std::int32_t>(id);
          best_len = p.size();
        }
      }
      ids.push_back(best);
      at += best_len;
    }
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += piece(id);
    return s;
  }
  std::string piece(std::int32_t id) const override {
    ZEBRA_CHECK(id >= 0 && static_cast<std::size_t>(id) < pieces_.size(), "PieceTokenizer: bad id ", id);
    return pieces_[static_cast<std::size_t>(id)];
  }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  std::int32_t bos_id() const override { return 1; }
  std::int32_t eos_id() const override { return 2; }
  std::string file_name() const override { return "test.tokenizer"; }
  void save(const std::string&) const override {}
  std::string chat_template() const override { return chat_template_; }
  // The id of an extra piece (-1 when absent).
  std::int32_t id_of(std::string_view p) const {
    for (std::size_t id = 259; id < pieces_.size(); ++id) {
      if (pieces_[id] == p) return static_cast<std::int32_t>(id);
    }
    return -1;
  }
  static std::int32_t byte_id(char c) { return 3 + static_cast<unsigned char>(c); }

 private:
  std::vector<std::string> pieces_;
  std::string chat_template_;
};

}  // namespace zebra::test
