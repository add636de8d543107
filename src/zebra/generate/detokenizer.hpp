// Streaming detokenization on the Tokenizer interface: ids arrive one at a time and the text that has become
// final is handed out, never half a UTF-8 character.
//
// The reference is Tokenizer::decode of the whole list: what has been emitted is always a prefix of
// decode(context tail + ids) after decode(context tail) (with no context: of decode(ids)), and after flush()
// equal to it. Each step decodes a short window, ids_ = [p, n): the tokens of the last emitted chunk (whose
// text prefix_text_ = decode(ids_[0, read_)) was already shown) plus the ids since; the new text is
// decode(window) minus prefix_text_. Starting the window a chunk back gives the new tokens their in-context
// form: SentencePiece and llama2.c drop the leading space of the first piece of a text, and the drop then
// applies to both decodes alike. A step whose new text ends in an incomplete UTF-8 character, or in U+FFFD
// (SentencePiece's decode of bytes still waiting for the rest of their character), emits nothing and waits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "zebra/data/tokenizer.hpp"

namespace zebra {

class StreamingDetokenizer {
 public:
  // How many ids of the context are kept as the first window (enough for the spacing of what follows).
  static constexpr std::size_t kContextTokens = 4;

  // `context`: ids shown before the stream (BOS and the prompt, say); empty = the stream starts the text.
  // The tokenizer is borrowed.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, std::span<const std::int32_t> context = {});

  // Feeds one id; returns the text that became final with it (often all of its piece, sometimes nothing).
  std::string feed(std::int32_t id);
  // Ends the stream: returns what was held back (an incomplete character at the very end stays as decoded).
  std::string flush();

  const std::string& text() const { return text_; }  // everything emitted so far
  // Bytes of the text of every id fed so far, final or not (text().size() plus what is held back).
  std::size_t decoded_size() const { return text_.size() + pending_bytes_; }

 private:
  const Tokenizer* tok_;
  std::vector<std::int32_t> ids_;  // the window
  std::size_t read_ = 0;           // ids_[0, read_) are shown, as prefix_text_
  std::string prefix_text_;
  std::size_t pending_bytes_ = 0;
  std::string text_;
};

}  // namespace zebra
