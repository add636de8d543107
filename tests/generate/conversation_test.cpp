// Conversations over a scripted model: after every turn the cache holds exactly the conversation as shown
// (the template's rendering of it), whether a reply ended at a stop token, a stop string (whose tokens are
// taken back out, also one that straddles the cut) or its length; each turn runs only what it adds.
#include "zebra/generate/conversation.hpp"

#include <gtest/gtest.h>

#include <deque>

#include "generate/test_tokenizer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::PieceTokenizer;

// Each call returns logits whose argmax is the front of `script`; decode(t) consumes t from the front.
class ScriptedModel : public ChatModel {
 public:
  ScriptedModel(std::int64_t vocab, std::int64_t limit) : vocab_(vocab), limit_(limit) {}
  std::span<const float> prefill(std::span<const std::int32_t> tokens) override {
    ++prefills;
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return next();
  }
  std::span<const float> decode(std::int32_t token) override {
    tokens_.push_back(token);
    if (!script.empty() && script.front() == token) script.pop_front();
    return next();
  }
  const std::vector<std::int32_t>& tokens() const override { return tokens_; }
  void mark() override { mark_ = tokens_.size(); }
  void rewind() override {
    ++rewinds;
    tokens_.resize(mark_);
  }
  void reset() override { tokens_.clear(); }
  std::int64_t room() const override { return limit_ - static_cast<std::int64_t>(tokens_.size()); }

  std::deque<std::int32_t> script;
  int prefills = 0, rewinds = 0;

 private:
  std::span<const float> next() {
    logits_.assign(static_cast<std::size_t>(vocab_), 0.0f);
    logits_[static_cast<std::size_t>(script.empty() ? 2 : script.front())] = 10.0f;  // EOS when the script ends
    return logits_;
  }
  std::int64_t vocab_, limit_;
  std::vector<std::int32_t> tokens_;
  std::size_t mark_ = 0;
  std::vector<float> logits_;
};

// The text the cache holds; the template's BOS/EOS text stands for the BOS/EOS ids (which decode to "").
std::string shown(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string s = render_chat(t, messages, true).text;
  for (const std::string& marker : {t.bos_text, t.eos_text}) {
    if (marker.empty()) continue;
    for (std::size_t at = s.find(marker); at != std::string::npos; at = s.find(marker)) s.erase(at, marker.size());
  }
  return s;
}

struct Fixture {
  explicit Fixture(const std::string& name, std::int64_t limit = 1000, std::int64_t max_new = 20)
      : tok({"<|im_start|>", "<|im_end|>", " Hel", "lo\nU", "ser:", " wor", "ld"}), t(chat_template_by_name(name)),
        model(tok.vocab_size(), limit), sampler(greedy_sampling()),
        chat(t, tok, model, sampler, ConversationOptions{"Sys", max_new, {}}) {}
  std::vector<std::int32_t> ids(std::initializer_list<const char*> pieces) const {
    std::vector<std::int32_t> v;
    for (const char* p : pieces) {
      const std::int32_t id = tok.id_of(p);
      if (id >= 0) {
        v.push_back(id);
      } else {
        for (char c : std::string(p)) v.push_back(PieceTokenizer::byte_id(c));
      }
    }
    return v;
  }
  TurnResult turn(const std::string& message, const std::vector<std::int32_t>& reply) {
    model.script.assign(reply.begin(), reply.end());
    std::string streamed;
    TurnResult r = chat.turn(message, [&](const std::string& p) { streamed += p; });
    EXPECT_EQ(streamed, r.reply.text);
    return r;
  }
  PieceTokenizer tok;
  const ChatTemplate& t;
  ScriptedModel model;
  Sampler sampler;
  Conversation chat;
};

TEST(Conversation, AStopStringIsTakenBackOutOfTheCacheAndTheNextTurnRunsOnlyItsOwnText) {
  Fixture f("plain");
  // " Hel" "lo\nU" "ser:": the reply is " Hello"; "lo\nU" straddles the cut, so only " Hel" stays cached and
  // the next turn runs "lo" again before its own text.
  const TurnResult a = f.turn("Hi", f.ids({" Hel", "lo\nU", "ser:", "!"}));
  EXPECT_EQ(a.reply.stop_reason, StopReason::kStopString);
  EXPECT_EQ(a.reply.text, " Hello");
  EXPECT_EQ(f.model.rewinds, 1);
  const std::size_t prompt_a = a.n_prompt;
  EXPECT_EQ(f.tok.decode(f.model.tokens()), shown(f.t, {{"system", "Sys"}, {"user", "Hi"}}) + " Hel");
  ASSERT_EQ(f.chat.messages().size(), 3u);
  EXPECT_EQ(f.chat.messages().back().content, "Hello");

  const TurnResult b = f.turn("Next", f.ids({" wor", "ld", "\n"}));  // then EOS: the script is over
  EXPECT_EQ(b.reply.stop_reason, StopReason::kStopToken);
  EXPECT_EQ(b.reply.text, " world\n");
  EXPECT_EQ(b.n_prompt, f.tok.encode("lo\nUser: Next\nAssistant:").size());
  EXPECT_EQ(f.tok.decode(f.model.tokens()),
            shown(f.t, {{"system", "Sys"}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Next"}}) + " world\n");
  EXPECT_EQ(f.model.tokens().size(), prompt_a + 1 + b.n_prompt + 3);
}

TEST(Conversation, TheEndOfTurnTokenComesWithTheNextTurn) {
  Fixture f("chatml");
  const std::int32_t end = f.tok.id_of("<|im_end|>");
  std::vector<std::int32_t> reply = f.ids({"ok"});
  reply.push_back(end);
  const TurnResult a = f.turn("Hi", reply);
  EXPECT_EQ(a.reply.stop_reason, StopReason::kStopToken);
  EXPECT_EQ(a.reply.text, "ok");
  EXPECT_EQ(f.model.tokens().back(), PieceTokenizer::byte_id('k'));  // the stop token is not cached
  f.turn("More", f.ids({"yes"}));
  const std::vector<ChatMessage> m = {{"system", "Sys"}, {"user", "Hi"}, {"assistant", "ok"}, {"user", "More"}};
  EXPECT_EQ(f.tok.decode(f.model.tokens()), shown(f.t, m) + "yes");
  EXPECT_EQ(f.model.prefills, 2);  // one per turn, no rewind
  EXPECT_EQ(f.model.rewinds, 0);
}

TEST(Conversation, AReplyThatRunsToItsLengthIsCachedWhole) {
  Fixture f("llama2", 1000, 3);
  const TurnResult a = f.turn("Hi", f.ids({" Hel", "lo\nU", "ser:", "x"}));  // llama2 does not stop at "\nUser:"
  EXPECT_EQ(a.reply.stop_reason, StopReason::kLength);
  EXPECT_EQ(a.reply.n_kept, 3u);
  f.turn("Go", f.ids({" ok"}));
  const std::vector<ChatMessage> m = {{"system", "Sys"}, {"user", "Hi"}, {"assistant", "Hello\nUser:"}, {"user", "Go"}};
  EXPECT_EQ(f.tok.decode(f.model.tokens()), shown(f.t, m) + " ok");
  // Reset starts from the system prompt again.
  f.chat.reset();
  EXPECT_TRUE(f.model.tokens().empty());
  ASSERT_EQ(f.chat.messages().size(), 1u);
  EXPECT_EQ(f.chat.messages()[0].role, "system");
}

TEST(Conversation, AFullContextIsAnErrorAndResets) {
  Fixture f("plain", 40);
  f.turn("Hi", f.ids({" ok"}));
  EXPECT_THROW(f.turn(std::string(50, 'x'), f.ids({" ok"})), Error);
  EXPECT_TRUE(f.model.tokens().empty());
  EXPECT_EQ(f.chat.messages().size(), 1u);  // the system prompt
  // A reply is cut to the room left: every sampled token must fit the cache.
  Fixture g("plain", 30, 50);
  const TurnResult r = g.turn("Hi", std::vector<std::int32_t>(40, PieceTokenizer::byte_id('a')));
  EXPECT_EQ(r.reply.stop_reason, StopReason::kLength);
  EXPECT_EQ(g.model.tokens().size(), 30u);
}

}  // namespace
}  // namespace zebra
