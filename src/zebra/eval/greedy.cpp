#include "zebra/eval/greedy.hpp"

#include "zebra/generate/decode_loop.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

std::vector<std::int32_t> greedy_continue(InferenceSession<float>& session, std::span<const std::int32_t> prompt,
                                          std::int64_t max_new_tokens, std::int32_t stop_token) {
  const std::int32_t stops[1] = {stop_token};
  return greedy_continue(session, prompt, max_new_tokens,
                         stop_token >= 0 ? std::span<const std::int32_t>(stops) : std::span<const std::int32_t>());
}

std::vector<std::int32_t> greedy_continue(InferenceSession<float>& session, std::span<const std::int32_t> prompt,
                                          std::int64_t max_new_tokens, std::span<const std::int32_t> stop_tokens) {
  ZEBRA_CHECK(!prompt.empty(), "greedy decoding needs a prompt of at least one token");
  session.reset();
  const std::span<const float> logits = session.prefill(prompt);
  Sampler greedy(greedy_sampling());
  DecodeOptions o;
  o.max_new_tokens = max_new_tokens;
  o.stop_tokens.assign(stop_tokens.begin(), stop_tokens.end());
  DecodeResult r = decode_loop(
      logits, greedy, [&](std::int32_t t) { return session.decode(t); }, o);
  r.tokens.resize(r.n_kept);
  return r.tokens;
}

}  // namespace zebra
