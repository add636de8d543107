// Every template rendered against hand-written text (system prompt, several turns, generation prompt), the
// assistant spans exact, the tokens and mask of a rendering, recognition from Jinja strings, bad input.
#include "zebra/generate/chat_template.hpp"

#include <gtest/gtest.h>

#include "generate/test_tokenizer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Name?"}, {"assistant", "Zebra."}};

struct Expected {
  std::string name;
  std::string text;                // the whole conversation, no generation prompt
  std::vector<std::string> spans;  // the text of each assistant span
  std::string prompt_after_first;  // system + first user message + generation prompt
};

std::vector<Expected> expected() {
  return {
      {"plain",
       "<s>Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Name?\nAssistant: Zebra.\n",
       {" Hello!\n", " Zebra.\n"},
       "<s>Be brief.\n\nUser: Hi\nAssistant:"},
      {"llama2",
       "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Name? [/INST] Zebra. </s>",
       {" Hello! </s>", " Zebra. </s>"},
       "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"},
      {"chatml",
       "<|im_start|>system\nBe "
       "brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
       "<|im_start|>user\nName?<|im_end|>\n<|im_start|>assistant\nZebra.<|im_end|>\n",
       {"Hello!<|im_end|>", "Zebra.<|im_end|>"},
       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
      {"llama3",
       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
       "\n\n"
       "Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName?<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\nZebra.<|eot_id|>",
       {"Hello!<|eot_id|>", "Zebra.<|eot_id|>"},
       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
       "\n\n"},
  };
}

TEST(ChatTemplate, RendersEachTemplateAsWrittenByHand) {
  ASSERT_EQ(known_chat_templates().size(), expected().size());
  for (const Expected& e : expected()) {
    SCOPED_TRACE(e.name);
    const ChatTemplate& t = chat_template_by_name(e.name);
    const RenderedChat r = render_chat(t, kConversation, false);
    EXPECT_EQ(r.text, e.text);
    ASSERT_EQ(r.assistant_spans.size(), e.spans.size());
    for (std::size_t i = 0; i < e.spans.size(); ++i) {
      const TextSpan s = r.assistant_spans[i];
      ASSERT_LE(s.end, r.text.size());
      EXPECT_EQ(r.text.substr(s.begin, s.end - s.begin), e.spans[i]);
    }
    const std::vector<ChatMessage> first(kConversation.begin(), kConversation.begin() + 2);
    const RenderedChat p = render_chat(t, first, true);
    EXPECT_EQ(p.text, e.prompt_after_first);
    EXPECT_TRUE(p.assistant_spans.empty());
  }
}

TEST(ChatTemplate, WithoutASystemPrompt) {
  const std::vector<ChatMessage> m = {{"user", "Hi"}, {"assistant", "Yo"}, {"user", "Bye"}};
  EXPECT_EQ(render_chat(chat_template_by_name("plain"), m, true).text,
            "<s>User: Hi\nAssistant: Yo\nUser: Bye\nAssistant:");
  EXPECT_EQ(render_chat(chat_template_by_name("llama2"), m, true).text,
            "<s>[INST] Hi [/INST] Yo </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(render_chat(chat_template_by_name("chatml"), m, true).text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(chat_template_by_name("llama3"), m, false).text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|><|start_header_id|>user<|end_"
            "header_id|>\n\n"
            "Bye<|eot_id|>");
}

TEST(ChatTemplate, ASpanIsWhatTheModelWritesAfterTheGenerationPrompt) {
  // render(history, generation prompt) + span text == render(history + assistant) up to the span's end.
  for (const ChatTemplate& t : known_chat_templates()) {
    SCOPED_TRACE(t.name);
    const RenderedChat whole = render_chat(t, kConversation, false);
    std::size_t k = 0;
    for (std::size_t i = 0; i < kConversation.size(); ++i) {
      if (kConversation[i].role != "assistant") continue;
      const std::vector<ChatMessage> history(kConversation.begin(),
                                             kConversation.begin() + static_cast<std::ptrdiff_t>(i));
      const RenderedChat prompt = render_chat(t, history, true);
      const TextSpan s = whole.assistant_spans[k++];
      EXPECT_EQ(s.begin, prompt.text.size());
      EXPECT_EQ(whole.text.substr(0, s.begin), prompt.text);
      // The reply the model writes: the reply prefix, the content, the end-of-turn marker.
      EXPECT_EQ(whole.text.substr(s.begin, s.end - s.begin),
                std::string(t.reply_prefix()) + kConversation[i].content + t.end_of_turn);
    }
  }
}

TEST(ChatTemplate, WhatFollowsAReplyContinuesItsContent) {
  for (const ChatTemplate& t : known_chat_templates()) {
    SCOPED_TRACE(t.name);
    const std::vector<ChatMessage> history(kConversation.begin(),
                                           kConversation.begin() + 3);  // ends "Hello!"
    const std::vector<ChatMessage> next = {kConversation[3]};
    const std::string after = render_after_reply(t, history, next, true);
    std::vector<ChatMessage> all = history;
    all.push_back(kConversation[3]);
    const std::string whole = render_chat(t, all, true).text;
    const std::size_t content_end = render_chat(t, history, false).assistant_spans.back().end - t.end_of_turn.size();
    EXPECT_EQ(whole.substr(0, content_end) + after, whole);
    EXPECT_TRUE(after.starts_with(t.end_of_turn));
    EXPECT_TRUE(after.ends_with(t.generation_prompt));
  }
  EXPECT_EQ(
      render_after_reply(chat_template_by_name("chatml"), std::vector<ChatMessage>{{"user", "a"}, {"assistant", "b"}},
                         std::vector<ChatMessage>{{"user", "c"}}, true),
      "<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_THROW(render_after_reply(chat_template_by_name("plain"), std::vector<ChatMessage>{{"user", "a"}},
                                  std::vector<ChatMessage>{}, true),
               Error);
}

TEST(ChatTemplate, EncodesWithSpecialTokensAndAnExactAssistantMask) {
  const test::PieceTokenizer tok({"<|im_start|>", "<|im_end|>", "Hello"});
  const ChatTemplate& t = chat_template_by_name("chatml");
  const std::vector<ChatMessage> m = {{"user", "Hi"}, {"assistant", "Hello"}};
  const RenderedChat r = render_chat(t, m, false);
  const EncodedChat e = encode_chat(t, tok, r);
  const std::int32_t start = tok.id_of("<|im_start|>"), end = tok.id_of("<|im_end|>"), hello = tok.id_of("Hello");
  auto b = [](char c) { return test::PieceTokenizer::byte_id(c); };
  std::vector<std::int32_t> want = {start,  b('u'), b('s'), b('e'),  b('r'), b('\n'),
                                    b('H'), b('i'), end,    b('\n'), start};
  for (char c : std::string("assistant\n")) want.push_back(b(c));
  const std::size_t answer_at = want.size();
  want.insert(want.end(), {hello, end, b('\n')});
  EXPECT_EQ(e.tokens, want);
  ASSERT_EQ(e.assistant.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(e.assistant[i], (i == answer_at || i == answer_at + 1) ? 1 : 0) << "token " << i;  // "Hello" <|im_end|>
  }
  EXPECT_EQ(tok.decode(e.tokens), r.text);
  const std::vector<std::int32_t> stops = chat_stop_tokens(t, tok);
  EXPECT_EQ(stops, (std::vector<std::int32_t>{tok.eos_id(), end}));
}

TEST(ChatTemplate, BosAndEosTextBecomeTheTokenizersIds) {
  const test::PieceTokenizer tok;
  const ChatTemplate& t = chat_template_by_name("llama2");
  const std::vector<ChatMessage> m = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}};
  const RenderedChat r = render_chat(t, m, true);
  const EncodedChat e = encode_chat(t, tok, r);
  auto ids = [&](std::string_view s) { return tok.encode(s); };
  std::vector<std::int32_t> want = {tok.bos_id()};
  for (auto v : {ids("[INST] a [/INST]")}) want.insert(want.end(), v.begin(), v.end());
  const std::size_t answer_at = want.size();
  for (auto v : {ids(" b ")}) want.insert(want.end(), v.begin(), v.end());
  want.push_back(tok.eos_id());
  const std::size_t answer_end = want.size();
  want.push_back(tok.bos_id());
  for (auto v : {ids("[INST] c [/INST]")}) want.insert(want.end(), v.begin(), v.end());
  EXPECT_EQ(e.tokens, want);
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(e.assistant[i], i >= answer_at && i < answer_end ? 1 : 0) << "token " << i;
  }
  EXPECT_EQ(encode_chat_text(t, tok, r.text), want);
  EXPECT_EQ(chat_stop_tokens(t, tok), std::vector<std::int32_t>{tok.eos_id()});
}

TEST(ChatTemplate, RecognisedFromJinjaStrings) {
  // Abridged from the templates of SmolLM2-Instruct, Llama-3-Instruct and Llama-2-chat.
  EXPECT_EQ(chat_template_from_jinja("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                     "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}")
                .name,
            "chatml");
  EXPECT_EQ(chat_template_from_jinja("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
                                     "message['content'] | trim + '<|eot_id|>' }}")
                .name,
            "llama3");
  EXPECT_EQ(chat_template_from_jinja("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}").name, "llama2");
  try {
    chat_template_from_jinja("{{ '### Instruction:' + message['content'] }}");
    ADD_FAILURE() << "an unknown template was recognised";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("plain, llama2, chatml, llama3"), std::string::npos) << what;
    EXPECT_NE(what.find("--template"), std::string::npos) << what;
    EXPECT_NE(what.find("### Instruction"), std::string::npos) << what;
  }
  EXPECT_EQ(choose_chat_template("", "").name, "plain");
  EXPECT_EQ(choose_chat_template("", "<|im_start|><|im_end|>").name, "chatml");
  EXPECT_EQ(choose_chat_template("llama2", "<|im_start|><|im_end|>").name, "llama2");  // --template wins
  EXPECT_THROW(choose_chat_template("", "{{ unknown }}"), Error);
  // A huge template string is quoted only in part.
  try {
    chat_template_from_jinja(std::string(100000, 'x'));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
  }
}

TEST(ChatTemplate, BadMessagesAndNamesAreRefusedClearly) {
  const ChatTemplate& t = chat_template_by_name("chatml");
  try {
    render_chat(t, std::vector<ChatMessage>{{"user", "a"}, {"tool", "b"}}, false);
    ADD_FAILURE();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'tool'"), std::string::npos) << what;
    EXPECT_NE(what.find("message 1"), std::string::npos) << what;
    EXPECT_NE(what.find("system, user or assistant"), std::string::npos) << what;
  }
  EXPECT_THROW(render_chat(t, std::vector<ChatMessage>{{"user", "a"}, {"system", "b"}}, false), Error);
  EXPECT_THROW(render_chat(chat_template_by_name("llama2"), std::vector<ChatMessage>{{"system", "s"}}, true), Error);
  try {
    chat_template_by_name("vicuna");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: plain, llama2, chatml, llama3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zebra
