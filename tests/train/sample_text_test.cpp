// Training samples decode with the KV cache: greedy samples equal the greedy continuation computed by
// re-running the whole context through the training forward pass at every token (the old uncached loop).
#include "zebra/train/sample_text.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "eval/tiny_model.hpp"
#include "generate/test_tokenizer.hpp"
#include "zebra/model/transformer.hpp"

namespace zebra {
namespace {

// The evaluation tests' tiny model (2 layers, global + local of window 5) over the test tokenizer's
// vocabulary.
ModelConfig tiny_config(std::int64_t vocab) {
  ModelConfig c = test::tiny_eval_config();
  c.vocab_size = vocab;
  c.resolve();
  return c;
}

// Greedy continuation with a full forward pass per token; generation stops at EOS.
std::vector<std::int32_t> uncached_greedy(Transformer<float>& model, std::vector<std::int32_t> ids, std::int64_t n,
                                          std::int32_t eos) {
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto len = static_cast<std::int64_t>(ids.size());
    model.forward_hidden(BatchView{1, len, ids.data(), nullptr, nullptr});
    model.logits_for_row(len - 1, logits.data());
    const auto next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == eos) break;
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

TEST(SampleText, GreedySamplesEqualTheUncachedForwardPass) {
  const test::PieceTokenizer tok;
  Transformer<float> model(tiny_config(tok.vocab_size()));
  init_parameters(model.params(), 3, 0.5);  // large weights: clear argmax margins, varied tokens
  const std::string prompt = "ab";
  std::vector<std::int32_t> ids = {tok.bos_id()};
  for (std::int32_t t : tok.encode(prompt)) ids.push_back(t);
  const std::int64_t n = 20;  // past the local window of 5
  const std::vector<std::int32_t> ref = uncached_greedy(model, ids, n, tok.eos_id());
  ASSERT_GE(ref.size(), 7u) << "EOS came early: the test would check little";
  EXPECT_GT(std::set<std::int32_t>(ref.begin(), ref.end()).size(), 2u);
  Sampler greedy(greedy_sampling());
  EXPECT_EQ(sample_text(model.params(), tok, prompt, n, 0, greedy), tok.decode(ref));
  // Within a context of 8 positions: the prompt's 3 and 6 new tokens (the last one is never run).
  Sampler again(greedy_sampling());
  const std::string short_text = sample_text(model.params(), tok, prompt, n, 8, again);
  EXPECT_EQ(short_text,
            tok.decode(std::vector<std::int32_t>(
                ref.begin(), ref.begin() + std::min<std::ptrdiff_t>(6, static_cast<std::ptrdiff_t>(ref.size())))));
}

}  // namespace
}  // namespace zebra
