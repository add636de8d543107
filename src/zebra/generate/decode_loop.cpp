#include "zebra/generate/decode_loop.hpp"

#include <algorithm>

#include "zebra/generate/stop_strings.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::kStopToken: return "stop token";
    case StopReason::kStopString: return "stop string";
    case StopReason::kLength: return "length";
  }
  return "?";
}

DecodeResult decode_loop(std::span<const float> logits, Sampler& sampler, const DecodeStep& step,
                         const DecodeOptions& options, std::span<const std::int32_t> history) {
  ZEBRA_CHECK(options.detokenizer != nullptr || options.stop_strings.empty(),
              "decode_loop: stop strings need a detokenizer");
  ZEBRA_CHECK(options.max_new_tokens >= 0, "decode_loop: max_new_tokens must be >= 0, got ", options.max_new_tokens);
  Timer total;
  DecodeResult result;
  StopStringFilter filter(options.stop_strings);
  std::vector<float> work(logits.begin(), logits.end());
  std::vector<std::int32_t> seen(history.begin(), history.end());
  std::vector<std::size_t> text_ends;  // per sampled non-stop token: decoded bytes after it
  StreamingDetokenizer* detok = options.detokenizer;
  std::string text;  // the detokenizer's final text (input of the stop filter)
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    result.text += piece;
    if (options.on_text) options.on_text(piece);
  };
  for (std::int64_t i = 0; i < options.max_new_tokens; ++i) {
    const std::int32_t t = sampler.sample(work, seen);
    result.tokens.push_back(t);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), t) != options.stop_tokens.end()) {
      result.stop_reason = StopReason::kStopToken;
      break;
    }
    seen.push_back(t);
    if (options.on_token) options.on_token(t);
    if (detok != nullptr) {
      text += detok->feed(t);
      text_ends.push_back(detok->decoded_size());
      emit(filter.update(text));
      if (filter.stopped()) {
        result.stop_reason = StopReason::kStopString;
        break;
      }
    }
    if (i + 1 == options.max_new_tokens) break;
    Timer timer;
    const std::span<const float> next = step(t);
    result.decode_seconds += timer.seconds();
    ++result.n_decoded;
    work.assign(next.begin(), next.end());
  }
  if (detok != nullptr && !filter.stopped()) {
    text += detok->flush();
    emit(filter.update(text));
    emit(filter.flush(text));
    if (filter.stopped()) result.stop_reason = StopReason::kStopString;
  }
  if (result.stop_reason == StopReason::kStopString) {
    // Tokens whose text ends at or before the cut (the text emitted is exactly the text before it).
    while (result.n_kept < text_ends.size() && text_ends[result.n_kept] <= result.text.size()) ++result.n_kept;
    result.kept_bytes = result.n_kept > 0 ? text_ends[result.n_kept - 1] : 0;
  } else {
    result.n_kept = result.tokens.size() - (result.stop_reason == StopReason::kStopToken ? 1 : 0);
    result.kept_bytes = result.text.size();
  }
  result.seconds = total.seconds();
  return result;
}

}  // namespace zebra
