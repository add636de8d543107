// zebra eval tokens from the command line: the losses of a saved model, equal to the library's, and bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_util.hpp"
#include "eval/tiny_model.hpp"
#include "zebra/eval/perplexity.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

using test::run_zebra;

class EvalTokensCli : public test::CliTest {};

TEST_F(EvalTokensCli, WritesTheLibrarysLossesPerSequence) {
  const ModelConfig c = test::tiny_eval_config();  // vocab 37, GL with window 5
  ParameterSet<float> params(c);
  init_parameters(params, 9, 0.5);
  save_model_dir(path("m"), params);
  std::ofstream(path("t.json")) << "[[1, 5, 7, 9, 11, 2, 36, 20], [3, 4]]";
  auto r = run_zebra("eval tokens " + path("m") + " --tokens " + path("t.json") + " --out " + path("l.json") +
                     " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path("l.json")));
  ASSERT_EQ(j.at("losses").size(), 2u);
  EXPECT_EQ(j.at("pattern"), "GL");
  ScopedThreads single(1);
  Transformer<float> model(params, RunOptions{true, 256});
  const std::vector<double> want = evaluate_token_losses(model, std::vector<std::int32_t>{1, 5, 7, 9, 11, 2, 36, 20});
  // The program and this test may split the products differently (BLAS blocking and threads): float32 sums
  // of <= 37 terms through ~20 stages differ by about 20 * sqrt(37) * 2^-24 ~ 7e-6 relative to the loss.
  const std::vector<double> got = j.at("losses")[0].get<std::vector<double>>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * (1.0 + want[i])) << i;
  EXPECT_EQ(j.at("losses")[1].size(), 1u);

  std::ofstream(path("bad.json")) << "[1, 37]";
  r = run_zebra("eval tokens " + path("m") + " --tokens " + path("bad.json") + " --threads 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("[0, 37)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zebra
