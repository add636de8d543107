#include "zebra/train/sample_text.hpp"

#include <algorithm>
#include <vector>

#include "zebra/generate/decode_loop.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

std::string sample_text(const ParameterSet<float>& params, const Tokenizer& tokenizer, const std::string& prompt,
                        std::int64_t max_new_tokens, std::int64_t max_context, Sampler& sampler, bool stop_at_newline) {
  std::vector<std::int32_t> ids = {tokenizer.bos_id()};
  for (std::int32_t t : tokenizer.encode(prompt)) ids.push_back(t);
  const auto n_prompt = static_cast<std::int64_t>(ids.size());
  ZEBRA_CHECK(max_context == 0 || n_prompt <= max_context, "sample_text: the prompt has ", n_prompt,
              " tokens, more than the context of ", max_context);
  InferenceSession<float> session(params, SessionOptions{max_context});
  const std::span<const float> logits = session.prefill(ids);
  StreamingDetokenizer detok(tokenizer, ids);
  DecodeOptions o;
  // The last sampled token is not run through the model: prompt + new - 1 positions at most.
  o.max_new_tokens = max_context > 0 ? std::min(max_new_tokens, max_context - n_prompt + 1) : max_new_tokens;
  o.stop_tokens = {tokenizer.eos_id()};
  if (stop_at_newline) o.stop_strings = {"\n"};
  o.detokenizer = &detok;
  return decode_loop(
             logits, sampler, [&](std::int32_t t) { return session.decode(t); }, o, ids)
      .text;
}

}  // namespace zebra
