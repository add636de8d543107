#include "zebra/generate/conversation.hpp"

#include <algorithm>

#include "zebra/util/error.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

Conversation::Conversation(const ChatTemplate& t, const Tokenizer& tokenizer, ChatModel& model, Sampler& sampler,
                           ConversationOptions options)
    : template_(&t), tok_(&tokenizer), model_(&model), sampler_(&sampler), options_(std::move(options)) {
  stop_tokens_ = chat_stop_tokens(t, tokenizer);
  for (std::int32_t id : options_.extra_stop_tokens) {
    if (std::find(stop_tokens_.begin(), stop_tokens_.end(), id) == stop_tokens_.end()) stop_tokens_.push_back(id);
  }
  reset();
}

void Conversation::reset() {
  model_->reset();
  messages_.clear();
  if (!options_.system.empty()) messages_.push_back({"system", options_.system});
  unkept_reply_.clear();
}

TurnResult Conversation::turn(const std::string& message, const std::function<void(const std::string&)>& on_text) {
  try {
    return run_turn(message, on_text);
  } catch (...) {
    reset();
    throw;
  }
}

TurnResult Conversation::run_turn(const std::string& message, const std::function<void(const std::string&)>& on_text) {
  const ChatMessage user{"user", message};
  std::string delta;
  if (!messages_.empty() && messages_.back().role == "assistant") {
    delta = unkept_reply_ + render_after_reply(*template_, messages_, std::span<const ChatMessage>(&user, 1), true);
    messages_.push_back(user);
  } else {
    messages_.push_back(user);
    delta = render_chat(*template_, messages_, true).text;
  }
  TurnResult result;
  const std::vector<std::int32_t> ids = encode_chat_text(*template_, *tok_, delta);
  ZEBRA_CHECK(!ids.empty(), "chat: the turn renders to no tokens");
  ZEBRA_CHECK(static_cast<std::int64_t>(ids.size()) < model_->room(), "chat: the context is full (",
              model_->tokens().size(), " positions cached, ", ids.size(), " more for this turn)");
  Timer prefill_timer;
  const std::span<const float> logits = model_->prefill(ids);
  result.prefill_seconds = prefill_timer.seconds();
  result.n_prompt = ids.size();
  model_->mark();

  DecodeOptions o;
  // Every sampled token may have to go into the cache (the last one when it belongs to the reply).
  o.max_new_tokens = std::min(options_.max_new_tokens, model_->room());
  o.stop_tokens = stop_tokens_;
  o.stop_strings = template_->stop_strings;
  StreamingDetokenizer detok(*tok_, model_->tokens());
  o.detokenizer = &detok;
  o.on_text = on_text;
  result.reply = decode_loop(
      logits, *sampler_, [&](std::int32_t t) { return model_->decode(t); }, o, model_->tokens());
  const DecodeResult& r = result.reply;

  // The cache ran every sampled token but the last: bring it to the prompt and the kept tokens.
  const auto fed = static_cast<std::size_t>(r.n_decoded);
  if (r.n_kept == fed + 1) {
    model_->decode(r.tokens[fed]);
  } else if (r.n_kept != fed) {
    model_->rewind();
    if (r.n_kept > 0) model_->prefill(std::span<const std::int32_t>(r.tokens.data(), r.n_kept));
  }
  unkept_reply_ = r.text.substr(r.kept_bytes);
  std::string content = r.text;
  if (content.starts_with(template_->reply_prefix())) content.erase(0, template_->reply_prefix().size());
  messages_.push_back({"assistant", std::move(content)});
  return result;
}

}  // namespace zebra
