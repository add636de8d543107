#include "zebra/generate/chat_template.hpp"

#include <algorithm>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

std::vector<ChatTemplate> make_templates() {
  std::vector<ChatTemplate> v;
  {
    // zebra's own: a base model continues "User: ...\nAssistant:" naturally.
    ChatTemplate t;
    t.name = "plain";
    t.begin = "<s>";
    t.bos_text = "<s>";
    t.system_suffix = "\n\n";
    t.user_prefix = t.user_prefix_after_system = "User: ";
    t.user_suffix = "\n";
    t.generation_prompt = "Assistant:";
    t.assistant_prefix = "Assistant: ";
    t.end_of_turn = "\n";
    t.stop_strings = {"\nUser:"};
    v.push_back(t);
  }
  {
    // Meta's reference (llama/generation.py chat_completion) and Hugging Face's Llama-2 template: every
    // exchange is BOS "[INST] user [/INST] answer " EOS; the system prompt opens the first user message.
    ChatTemplate t;
    t.name = "llama2";
    t.bos_text = "<s>";
    t.eos_text = "</s>";
    t.system_prefix = "<s>[INST] <<SYS>>\n";
    t.system_suffix = "\n<</SYS>>\n\n";
    t.user_prefix = "<s>[INST] ";
    t.user_suffix = " [/INST]";
    t.assistant_prefix = " ";
    t.end_of_turn = " </s>";
    t.system_needs_user = true;
    t.stop_strings = {"</s>", "[INST]"};
    t.jinja_markers = {"[INST]", "[/INST]"};
    v.push_back(t);
  }
  {
    ChatTemplate t;
    t.name = "chatml";
    t.system_prefix = "<|im_start|>system\n";
    t.user_prefix = t.user_prefix_after_system = "<|im_start|>user\n";
    t.system_suffix = t.user_suffix = "<|im_end|>\n";
    t.generation_prompt = t.assistant_prefix = "<|im_start|>assistant\n";
    t.end_of_turn = "<|im_end|>";
    t.after_turn = "\n";
    t.stop_strings = {"<|im_end|>"};
    t.jinja_markers = {"<|im_start|>", "<|im_end|>"};
    v.push_back(t);
  }
  {
    ChatTemplate t;
    t.name = "llama3";
    t.begin = t.bos_text = "<|begin_of_text|>";
    t.system_prefix = "<|start_header_id|>system<|end_header_id|>\n\n";
    t.user_prefix = t.user_prefix_after_system = "<|start_header_id|>user<|end_header_id|>\n\n";
    t.system_suffix = t.user_suffix = "<|eot_id|>";
    t.generation_prompt = t.assistant_prefix = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    t.end_of_turn = "<|eot_id|>";
    t.stop_strings = {"<|eot_id|>", "<|end_of_text|>"};
    t.jinja_markers = {"<|start_header_id|>", "<|eot_id|>"};
    v.push_back(t);
  }
  return v;
}

// At most 60 bytes of untrusted text for an error message.
std::string excerpt(std::string_view s) {
  return s.size() <= 60 ? std::string(s) : std::string(s.substr(0, 60)) + "...";
}

}  // namespace

std::string_view ChatTemplate::reply_prefix() const {
  return std::string_view(assistant_prefix).substr(std::min(generation_prompt.size(), assistant_prefix.size()));
}

const std::vector<ChatTemplate>& known_chat_templates() {
  static const std::vector<ChatTemplate> templates = make_templates();
  return templates;
}

std::string known_chat_template_names() {
  std::string s;
  for (const ChatTemplate& t : known_chat_templates()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

const ChatTemplate& chat_template_by_name(std::string_view name) {
  for (const ChatTemplate& t : known_chat_templates()) {
    if (t.name == name) return t;
  }
  throw Error("unknown chat template '" + excerpt(name) + "' (known: " + known_chat_template_names() + ")");
}

const ChatTemplate& chat_template_from_jinja(std::string_view jinja) {
  // Llama-3 first: its templates may mention other markers in comments, its own never appear elsewhere.
  for (const char* name : {"llama3", "chatml", "llama2"}) {
    const ChatTemplate& t = chat_template_by_name(name);
    const bool all = std::all_of(t.jinja_markers.begin(), t.jinja_markers.end(),
                                 [&](const std::string& m) { return jinja.find(m) != std::string_view::npos; });
    if (all) return t;
  }
  throw Error("the model's chat template is not one zebra recognises (it starts '" + excerpt(jinja) +
              "'); known templates: " + known_chat_template_names() + "; choose one with --template NAME");
}

const ChatTemplate& choose_chat_template(std::string_view name, std::string_view jinja) {
  if (!name.empty()) return chat_template_by_name(name);
  return jinja.empty() ? chat_template_by_name("plain") : chat_template_from_jinja(jinja);
}

RenderedChat render_chat(const ChatTemplate& t, std::span<const ChatMessage> messages, bool add_generation_prompt) {
  RenderedChat r;
  r.text = t.begin;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system") {
      ZEBRA_CHECK(i == 0, "chat template ", t.name, ": message ", i, " is a system message; only the first may be");
      ZEBRA_CHECK(!t.system_needs_user || (i + 1 < messages.size() && messages[i + 1].role == "user"), "chat template ",
                  t.name, ": the system message must be followed by a user message");
      r.text += t.system_prefix + m.content + t.system_suffix;
    } else if (m.role == "user") {
      const bool after_system = i > 0 && messages[i - 1].role == "system";
      r.text += (after_system ? t.user_prefix_after_system : t.user_prefix) + m.content + t.user_suffix;
    } else if (m.role == "assistant") {
      r.text += t.generation_prompt;
      TextSpan span;
      span.begin = r.text.size();
      r.text += std::string(t.reply_prefix()) + m.content + t.end_of_turn;
      span.end = r.text.size();
      r.assistant_spans.push_back(span);
      r.text += t.after_turn;
    } else {
      throw Error("chat message " + std::to_string(i) + " has role '" + excerpt(m.role) +
                  "' (expected system, user or assistant)");
    }
  }
  if (add_generation_prompt) r.text += t.generation_prompt;
  return r;
}

std::string render_after_reply(const ChatTemplate& t, std::span<const ChatMessage> history,
                               std::span<const ChatMessage> next, bool add_generation_prompt) {
  ZEBRA_CHECK(!history.empty() && history.back().role == "assistant",
              "render_after_reply: the history must end with the assistant's reply");
  const std::string before = render_chat(t, history, false).text;
  std::vector<ChatMessage> all(history.begin(), history.end());
  all.insert(all.end(), next.begin(), next.end());
  const std::string after = render_chat(t, all, add_generation_prompt).text;
  const std::size_t closing = t.end_of_turn.size() + t.after_turn.size();
  // Rendering only appends: `after` extends `before`, whose last bytes close the reply.
  ZEBRA_CHECK(after.starts_with(before) && before.size() >= closing, "render_after_reply: template ", t.name,
              " does not render by appending");
  return after.substr(before.size() - closing);
}

std::vector<std::int32_t> encode_chat_text(const ChatTemplate& t, const Tokenizer& tokenizer, std::string_view text) {
  std::vector<std::int32_t> ids;
  auto encode = [&](std::string_view s) {
    if (s.empty()) return;
    // Special tokens spelled in the template (<|im_start|>, <|eot_id|>) become single tokens.
    const std::vector<std::int32_t> part = tokenizer.encode_special(s);
    ids.insert(ids.end(), part.begin(), part.end());
  };
  std::size_t at = 0;
  while (at < text.size()) {
    // The next BOS or EOS text, whichever comes first.
    std::size_t next = std::string_view::npos, len = 0;
    std::int32_t id = -1;
    for (const auto& [marker, marker_id] : {std::pair{std::string_view(t.bos_text), tokenizer.bos_id()},
                                            std::pair{std::string_view(t.eos_text), tokenizer.eos_id()}}) {
      if (marker.empty()) continue;
      const std::size_t p = text.find(marker, at);
      if (p < next) {
        next = p;
        len = marker.size();
        id = marker_id;
      }
    }
    if (next == std::string_view::npos) {
      encode(text.substr(at));
      break;
    }
    encode(text.substr(at, next - at));
    ids.push_back(id);
    at = next + len;
  }
  return ids;
}

EncodedChat encode_chat(const ChatTemplate& t, const Tokenizer& tokenizer, const RenderedChat& chat) {
  EncodedChat e;
  auto add = [&](std::size_t begin, std::size_t end, bool assistant) {
    ZEBRA_CHECK(begin <= end && end <= chat.text.size(), "encode_chat: span [", begin, ", ", end,
                ") lies outside the rendered text of ", chat.text.size(), " bytes");
    const std::vector<std::int32_t> ids =
        encode_chat_text(t, tokenizer, std::string_view(chat.text).substr(begin, end - begin));
    e.tokens.insert(e.tokens.end(), ids.begin(), ids.end());
    e.assistant.insert(e.assistant.end(), ids.size(), assistant ? 1 : 0);
  };
  std::size_t at = 0;
  for (const TextSpan& s : chat.assistant_spans) {
    ZEBRA_CHECK(s.begin >= at, "encode_chat: assistant spans overlap or are out of order");
    add(at, s.begin, false);
    add(s.begin, s.end, true);
    at = s.end;
  }
  add(at, chat.text.size(), false);
  return e;
}

std::vector<std::int32_t> chat_stop_tokens(const ChatTemplate& t, const Tokenizer& tokenizer) {
  std::vector<std::int32_t> ids = {tokenizer.eos_id()};
  for (const std::string& s : t.stop_strings) {
    if (s.empty()) continue;
    const std::vector<std::int32_t> one = encode_chat_text(t, tokenizer, s);
    if (one.size() == 1 && std::find(ids.begin(), ids.end(), one[0]) == ids.end()) ids.push_back(one[0]);
  }
  return ids;
}

}  // namespace zebra
