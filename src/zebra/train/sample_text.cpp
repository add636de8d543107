#include "zebra/train/sample_text.hpp"

#include <vector>

namespace zebra {

std::string sample_text_uncached(Transformer<float>& model, const Tokenizer& tokenizer, const std::string& prompt,
                                 std::int64_t max_new_tokens, std::int64_t max_context, Sampler& sampler,
                                 bool stop_at_newline) {
  std::vector<std::int32_t> ids = {tokenizer.bos_id()};
  for (std::int32_t t : tokenizer.encode(prompt)) ids.push_back(t);
  const std::size_t prompt_len = ids.size();
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  std::string out;
  for (std::int64_t i = 0; i < max_new_tokens; ++i) {
    const std::int64_t n = std::min<std::int64_t>(static_cast<std::int64_t>(ids.size()), max_context);
    const std::int32_t* ctx = ids.data() + (static_cast<std::int64_t>(ids.size()) - n);
    model.forward_hidden(BatchView{1, n, ctx, nullptr, nullptr});
    model.logits_for_row(n - 1, logits.data());
    const std::int32_t next = sampler.sample(logits, ids);
    if (next == tokenizer.eos_id()) break;
    ids.push_back(next);
    const std::string piece = tokenizer.decode(std::vector<std::int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(prompt_len), ids.end()));
    out = piece;
    if (stop_at_newline && out.find('\n') != std::string::npos) {
      out = out.substr(0, out.find('\n'));
      break;
    }
  }
  return out;
}

}  // namespace zebra
