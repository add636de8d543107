// zebra bench from the command line: tiny attention, train and bf16 runs write the JSON they print, and bad input
// is refused naming what was expected.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"

namespace zebra {
namespace {

using test::run_zebra;

class BenchCli : public test::CliTest {
 protected:
  std::string tiny_config() { return test::write_tiny_config(dir_); }
  // Runs `zebra ARGS --json FILE` and returns what it wrote (a parse error fails the test when it wrote nothing).
  nlohmann::json run_json(const std::string& args, const std::string& file) {
    const auto r = run_zebra(args + " --json " + path(file));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::ifstream in(path(file));
    return nlohmann::json::parse(in);
  }
};

TEST_F(BenchCli, AttentionSweepWritesJsonWithSpeedupAgainstGlobal) {
  const nlohmann::json j = run_json(
      "bench attention --seq-lens 128 --windows 32 --heads 2 --kv-heads 1 --head-dim 16 --repeats 1 --threads 1",
      "att.json");
  ASSERT_EQ(j.at("rows").size(), 2u) << j.dump(1);  // the global layer and window 32 at T = 128
  for (const auto& row : j.at("rows")) {
    EXPECT_EQ(row.at("seq_len"), 128);
    EXPECT_GT(row.at("fwd_gflops").get<double>(), 0.0);
  }
}

// The loss of an untrained model on random tokens: logits z = x . w with rmsnorm outputs |x| ~ 1 and init weights
// of std 0.02 over d = 32 have std sqrt(32) 0.02 = 0.11, so a token's loss is ln V + var(z) / 2 - z_target =
// ln V + 0.006 +- 0.11, and the mean over 31 or more targets is within 0.1 of ln V (several standard errors).
constexpr double kUntrainedLossTolerance = 0.1;

// One timed step (no warm-up) per row: its loss is the untrained model's.
TEST_F(BenchCli, TrainStepsOfTheModelAndItsTwinWriteJson) {
  const nlohmann::json j =
      run_json("bench train --config " + tiny_config() + " --seq-lens 32 --steps 1 --warmup 0 --peak 100 --threads 1",
               "train.json");
  ASSERT_EQ(j.at("rows").size(), 2u) << j.dump(1);  // the Zebra model and its full-attention twin
  EXPECT_EQ(j.at("rows")[0].at("model"), "zebra");
  EXPECT_EQ(j.at("rows")[1].at("model"), "full");
  for (const auto& row : j.at("rows")) {
    EXPECT_EQ(row.at("seq_len"), 32);
    EXPECT_GT(row.at("tokens_per_s").get<double>(), 0.0);
    EXPECT_NEAR(row.at("loss").get<double>(), std::log(300.0), kUntrainedLossTolerance);
  }
}

TEST_F(BenchCli, Bf16TrainsBothPrecisionsOnTheSameBatches) {
  const nlohmann::json j =
      run_json("bench bf16 --config " + tiny_config() + " --steps 3 --seq-len 16 --batch 2 --threads 1", "bf16.json");
  ASSERT_EQ(j.at("loss_fp32").size(), 3u) << j.dump(1);
  ASSERT_EQ(j.at("loss_bf16").size(), 3u) << j.dump(1);
  // Same untrained init in both precisions: the first step's loss is the untrained model's in each.
  EXPECT_NEAR(j.at("loss_fp32")[0].get<double>(), std::log(300.0), kUntrainedLossTolerance);
  EXPECT_NEAR(j.at("loss_bf16")[0].get<double>(), std::log(300.0), kUntrainedLossTolerance);
  EXPECT_TRUE(std::isfinite(j.at("eval_bf16").get<double>()));
}

TEST_F(BenchCli, BadInputGetsAClearError) {
  auto r = run_zebra("bench attention --kernel sse9 --seq-lens 64 --windows 16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--kernel must be default, scalar, avx2, avx512 or avx512-on-avx2"), std::string::npos)
      << r.output;
  r = run_zebra("bench train --recompute sometimes");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("recompute"), std::string::npos) << r.output;
  r = run_zebra("bench bf16 --data " + path("no_such_folder"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no_such_folder"), std::string::npos) << r.output;
  r = run_zebra("bench");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace zebra
