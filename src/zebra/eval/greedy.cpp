#include "zebra/eval/greedy.hpp"

#include <algorithm>

#include "zebra/util/error.hpp"

namespace zebra {

std::vector<std::int32_t> greedy_continue(InferenceSession<float>& session, std::span<const std::int32_t> prompt,
                                          std::int64_t max_new_tokens, std::int32_t stop_token) {
  ZEBRA_CHECK(!prompt.empty(), "greedy decoding needs a prompt of at least one token");
  session.reset();
  std::span<const float> logits = session.prefill(prompt);
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < max_new_tokens; ++i) {
    const auto best = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == stop_token) break;
    out.push_back(best);
    if (i + 1 < max_new_tokens) logits = session.decode(best);  // the last token need not run
  }
  return out;
}

}  // namespace zebra
