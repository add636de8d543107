// Chat templates as data: how a conversation of {role, content} messages becomes model text, which parts of
// that text are the assistant's (for an answer-only loss), and how a reply ends.
//
// A rendering is   begin  [system_prefix S system_suffix]  then per message:
//   user:       user_prefix U user_suffix        (user_prefix_after_system right after a system message)
//   assistant:  assistant_prefix A end_of_turn after_turn
// and, with add_generation_prompt, generation_prompt at the end. generation_prompt is a prefix of
// assistant_prefix; the rest of assistant_prefix, the content and end_of_turn are what the model writes
// after the generation prompt: that is an assistant span. So render(history, true).text + the span's text
// == render(history + [assistant], false).text (tested for every template).
// Special tokens appear as their text ("<|im_start|>"): the tokenizer is expected to match them as single
// tokens, except bos_text / eos_text, which encode_chat_text() maps to the tokenizer's BOS / EOS ids itself
// (SentencePiece and llama2.c vocabularies do not match "<s>" in text). Content is not trimmed or escaped:
// a message that contains bos_text becomes a BOS token, as in Hugging Face's templates.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/chat_records.hpp"  // ChatMessage
#include "zebra/data/tokenizer.hpp"

namespace zebra {

struct TextSpan {
  std::size_t begin = 0, end = 0;  // bytes [begin, end)
};

struct RenderedChat {
  std::string text;
  std::vector<TextSpan> assistant_spans;  // one per assistant message, in order
};

struct ChatTemplate {
  std::string name;
  std::string begin;
  std::string system_prefix, system_suffix;
  std::string user_prefix, user_suffix;
  std::string user_prefix_after_system;  // llama2 folds the system prompt into the first [INST]
  std::string generation_prompt;
  std::string assistant_prefix;
  std::string end_of_turn;                 // the marker that ends a reply (inside the assistant span)
  std::string after_turn;                  // text after the marker (outside the span)
  std::string bos_text, eos_text;          // text standing for the BOS / EOS ids ("" = none)
  bool system_needs_user = false;          // the system prompt opens the first user message (llama2)
  std::vector<std::string> stop_strings;   // a reply ends where one of these begins
  std::vector<std::string> jinja_markers;  // all present in a Jinja template = this template

  // What the model writes before the content after the generation prompt (" " for plain and llama2).
  std::string_view reply_prefix() const;
};

// plain, llama2, chatml, llama3.
const std::vector<ChatTemplate>& known_chat_templates();
// "plain, llama2, chatml, llama3" (for help texts and errors).
std::string known_chat_template_names();
// By name; throws naming the known ones.
const ChatTemplate& chat_template_by_name(std::string_view name);
// Recognises a Jinja chat template (tokenizer.chat_template of GGUF or Hugging Face) by its markers; throws
// naming the known templates and --template when none matches.
const ChatTemplate& chat_template_from_jinja(std::string_view jinja);

// The template to use: `name` when given (--template), else the one the model's Jinja template names, else
// plain (a model without a template).
const ChatTemplate& choose_chat_template(std::string_view name, std::string_view jinja);

// Renders `messages` (roles system/user/assistant; a system message only first; anything else throws naming
// the message). add_generation_prompt appends the generation prompt for the next reply.
RenderedChat render_chat(const ChatTemplate& t, std::span<const ChatMessage> messages, bool add_generation_prompt);

// What follows a reply's text when the conversation goes on with `next` (user messages, say): the reply's
// end-of-turn marker, what comes after it, and the rendering of `next` (with the generation prompt when
// asked). `history` ends with that reply as an assistant message. For a chat that keeps the reply as the
// model wrote it in its cache, which may differ from how the template renders the content (a missing leading
// space): render(history + next).text == the text before the reply's content + content +
// render_after_reply(...).
std::string render_after_reply(const ChatTemplate& t, std::span<const ChatMessage> history,
                               std::span<const ChatMessage> next, bool add_generation_prompt);

// Tokens of rendered text: bos_text / eos_text become the tokenizer's BOS / EOS ids, the text between them
// goes through tokenizer.encode() (one call per run of text).
std::vector<std::int32_t> encode_chat_text(const ChatTemplate& t, const Tokenizer& tokenizer, std::string_view text);

struct EncodedChat {
  std::vector<std::int32_t> tokens;
  // Per token: 1 inside an assistant span (content + end-of-turn marker), else 0.
  std::vector<std::uint8_t> assistant;
};

// Tokens and the assistant mask of a rendering: the text is cut at the span boundaries and each piece is
// encoded on its own (encode_chat_text), so every token lies wholly inside or outside a span, as a reply
// generated after the generation prompt does. (A tokenizer that adds a dummy prefix per encode() call adds
// one per piece.)
EncodedChat encode_chat(const ChatTemplate& t, const Tokenizer& tokenizer, const RenderedChat& chat);

// The ids that end a reply: EOS, and every stop string that encodes to a single token ("<|im_end|>" with a
// tokenizer that matches special tokens).
std::vector<std::int32_t> chat_stop_tokens(const ChatTemplate& t, const Tokenizer& tokenizer);

}  // namespace zebra
