// Per-token losses (`zebra eval tokens`, eval/token_losses.hpp): the same numbers as the perplexity windows,
// and a token file is untrusted input.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/temp_dir.hpp"
#include "eval/tiny_model.hpp"
#include "zebra/eval/perplexity.hpp"
#include "zebra/eval/token_losses.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

// One window of n tokens scores positions 0 .. n - 2: the per-position losses of evaluate_perplexity are the
// token losses, computed by the same forward pass and head (so equal to the last bit).
TEST(TokenLosses, EqualThePerplexityWindowPositions) {
  ScopedThreads single_thread(1);
  Transformer<float> model(test::tiny_eval_config());
  init_parameters(model.params(), 5);
  const auto tokens = test::random_tokens(23, test::kTinyVocab, 2);  // past the window of 5
  const std::vector<double> losses = evaluate_token_losses(model, tokens);
  ASSERT_EQ(losses.size(), tokens.size() - 1);
  PerplexityOptions o;
  o.ctx = static_cast<std::int64_t>(tokens.size());
  const PerplexityResult r = evaluate_perplexity(model, tokens, o);
  double sum = 0.0;
  for (std::size_t j = 0; j < losses.size(); ++j) {
    EXPECT_EQ(losses[j], r.position_loss_sum[j + 1]) << j;
    sum += losses[j];
  }
  EXPECT_EQ(sum, r.loss_sum);
  // With a zero head every prediction is uniform: ln V each (float log-sum-exp of V zeros: ~1e-7 relative).
  std::fill(model.params().views.lm_head, model.params().views.lm_head + test::kTinyVocab * test::kTinyDModel, 0.0f);
  for (double l : evaluate_token_losses(model, tokens)) EXPECT_NEAR(l, std::log(37.0), 1e-6);
  EXPECT_THROW(evaluate_token_losses(model, std::vector<std::int32_t>{3}), Error);
  EXPECT_THROW(evaluate_token_losses(model, std::vector<std::int32_t>{3, 37}), Error);
}

TEST(TokenLosses, JsonHasOneListPerSequence) {
  ScopedThreads single_thread(1);
  Transformer<float> model(test::tiny_eval_config());
  init_parameters(model.params(), 5);
  const std::vector<std::vector<std::int32_t>> seqs = {{1, 2, 3}, {4, 5, 6, 7, 8}};
  const nlohmann::json j = token_losses_json(model, seqs);
  ASSERT_EQ(j.at("losses").size(), 2u);
  EXPECT_EQ(j.at("losses")[0].size(), 2u);
  EXPECT_EQ(j.at("losses")[1].size(), 4u);
  const std::vector<double> second = j.at("losses")[1].get<std::vector<double>>();
  EXPECT_DOUBLE_EQ(j.at("mean_loss")[1].get<double>(), (second[0] + second[1] + second[2] + second[3]) / 4);
}

void expect_refused(const test::TempDir& dir, const std::string& text, const std::string& says) {
  const std::string path = dir / "t.json";
  test::write_bytes(path, text);
  try {
    read_token_sequences(path, 37, 64);
    FAIL() << "accepted " << text.substr(0, 100);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("t.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(says), std::string::npos) << msg;
    EXPECT_LT(msg.size(), 400u) << "the message echoes too much: " << msg.substr(0, 200);
  }
}

TEST(TokenLosses, ReadsTokenFilesAndRefusesHostileOnes) {
  test::TempDir dir;
  test::write_bytes(dir / "a.json", "[1, 2, 36]");
  EXPECT_EQ(read_token_sequences(dir / "a.json", 37, 64), (std::vector<std::vector<std::int32_t>>{{1, 2, 36}}));
  test::write_bytes(dir / "b.json", R"({"tokens": [[1, 2], [3, 4, 5]]})");
  EXPECT_EQ(read_token_sequences(dir / "b.json", 37, 64).size(), 2u);

  expect_refused(dir, "[1, 2,", "not valid JSON");
  expect_refused(dir, "[]", "non-empty");
  expect_refused(dir, "{\"ids\": [1, 2]}", "'tokens'");
  expect_refused(dir, "[1, 2.5]", "token id");
  expect_refused(dir, "[1, 37]", "[0, 37)");
  expect_refused(dir, "[1, -1]", "[0, 37)");
  expect_refused(dir, "[1, 1e300]", "token id");
  expect_refused(dir, "[1, 99999999999999999999]", "token id");
  expect_refused(dir, "[1]", "2 .. 64");
  expect_refused(dir, "[[1, 2], 3]", "expected an array");
  expect_refused(dir, "[[1, 2], [[1, 2], 3]]", "token id");
  std::string long_seq = "[";
  for (int i = 0; i < 65; ++i) long_seq += (i ? ",1" : "1");
  expect_refused(dir, long_seq + "]", "65 tokens");
  expect_refused(dir, "[\"" + std::string(10000, 'x') + "\", 1]", "token id");
}

}  // namespace
}  // namespace zebra
