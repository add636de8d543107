// A conversation with a model that keeps its KV cache between turns (zebra chat): each turn runs only what it
// adds to the cache, and the cache holds exactly the conversation as shown.
//
// A turn: the text it adds (the first turn: the rendering of the system prompt and the message up to the
// generation prompt; later turns: the end of the last reply the cache lacks, the reply's end-of-turn marker,
// the message and the generation prompt, render_after_reply) is encoded and prefilled; the reply is sampled
// by decode_loop and streamed. The cache is then brought to "prompt + the reply's kept tokens"
// (DecodeResult::n_kept): a stop string's tokens are taken back out (ChatModel::rewind) and a last token that
// belongs to the reply is run. The reply stays in the cache as the model wrote it, which may differ from how
// the template would render it (a missing leading space).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/generate/decode_loop.hpp"
#include "zebra/generate/sampler.hpp"

namespace zebra {

// The model side: a cache that runs tokens after what it holds (an InferenceSession, one sequence of a
// batched one, ...).
class ChatModel {
 public:
  virtual ~ChatModel() = default;
  // Runs `tokens` (at least one) after the cache; returns the logits [V] of the last (valid until the next
  // call).
  virtual std::span<const float> prefill(std::span<const std::int32_t> tokens) = 0;
  virtual std::span<const float> decode(std::int32_t token) = 0;
  virtual const std::vector<std::int32_t>& tokens() const = 0;  // what the cache holds
  virtual void mark() = 0;                                      // remembers this point
  virtual void rewind() = 0;                                    // returns to the last mark
  virtual void reset() = 0;                                     // empties the cache
  virtual std::int64_t room() const = 0;                        // positions the cache can still take
};

struct ConversationOptions {
  std::string system;                           // system prompt ("" = none)
  std::int64_t max_new_tokens = 256;            // per reply
  std::vector<std::int32_t> extra_stop_tokens;  // besides chat_stop_tokens() (BOS for llama2.c stories)
};

struct TurnResult {
  DecodeResult reply;
  std::size_t n_prompt = 0;  // tokens the turn ran before the reply
  double prefill_seconds = 0.0;
};

class Conversation {
 public:
  // All borrowed: they must outlive the conversation.
  Conversation(const ChatTemplate& t, const Tokenizer& tokenizer, ChatModel& model, Sampler& sampler,
               ConversationOptions options = {});
  // One user message and the reply; on_text receives the reply's text as it becomes final. On an error the
  // conversation is reset.
  TurnResult turn(const std::string& message, const std::function<void(const std::string&)>& on_text = {});
  void reset();
  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  TurnResult run_turn(const std::string& message, const std::function<void(const std::string&)>& on_text);

  const ChatTemplate* template_;
  const Tokenizer* tok_;
  ChatModel* model_;
  Sampler* sampler_;
  ConversationOptions options_;
  std::vector<std::int32_t> stop_tokens_;
  std::vector<ChatMessage> messages_;
  std::string unkept_reply_;  // the end of the last reply as shown that the cache does not hold
};

}  // namespace zebra
