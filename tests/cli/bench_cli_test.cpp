// zebra bench from the command line: a tiny attention sweep writes the JSON it prints, and bad input is refused
// naming what was expected.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"

namespace zebra {
namespace {

using test::run_zebra;

class BenchCli : public test::CliTest {};

TEST_F(BenchCli, AttentionSweepWritesJsonWithSpeedupAgainstGlobal) {
  const auto r = run_zebra("bench attention --seq-lens 128 --windows 32 --heads 2 --kv-heads 1 --head-dim 16 "
                           "--repeats 1 --threads 1 --json " + path("att.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(path("att.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j.at("rows").size(), 2u) << j.dump(1);  // the global layer and window 32 at T = 128
  for (const auto& row : j.at("rows")) {
    EXPECT_EQ(row.at("seq_len"), 128);
    EXPECT_GT(row.at("fwd_gflops").get<double>(), 0.0);
  }
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
