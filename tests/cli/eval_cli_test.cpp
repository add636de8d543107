// zebra eval ppl (several context lengths, strided) and zebra eval passkey from the command line, on the real
// stories260K checkpoint (skipped when ../shared is absent), and their refusals of bad input (always run: the
// flags are checked before the model is loaded). Everything runs with --threads 1 on the tiny model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/cli_util.hpp"
#include "test_paths.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::run_zebra;

using test::stories_bin;
using test::stories_dir;
std::string stories_text() { return stories_dir() + "/tinystories_val.txt"; }

class EvalCli : public test::CliTest {
 protected:
  void TearDown() override {
    ::unsetenv("ZEBRA_GNUPLOT");
    CliTest::TearDown();
  }
};

std::int64_t line_count(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::int64_t n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

TEST_F(EvalCli, PplTwoContextLengthsWritesJsonCsvAndPlot) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = run_zebra("eval ppl " + stories_bin() + " " + stories_text() +
                           " --ctx 64,128 --max-tokens 1024 --position-buckets 5 --threads 1 -q --json " +
                           path("ppl.json") + " --csv " + path("ppl.csv") + " --plot " + path("ppl.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("non-overlapping windows"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("geometric buckets"), std::string::npos) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path("ppl.json")));
  EXPECT_EQ(j.at("scheme").get<std::string>(), "non-overlapping");
  EXPECT_GE(j.at("data_tokens").get<int>(), 1024);  // whole documents until --max-tokens are there
  const auto& results = j.at("results");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(j.contains("ppl"));  // top-level figures only for a single ctx
  for (int i = 0; i < 2; ++i) {
    const auto& res = results[static_cast<std::size_t>(i)];
    const int ctx = i == 0 ? 64 : 128;
    EXPECT_EQ(res.at("ctx").get<int>(), ctx);
    EXPECT_EQ(res.at("windows").get<int>(), 1024 / ctx);
    EXPECT_EQ(res.at("scored_tokens").get<int>(), 1024 / ctx * (ctx - 1));
    EXPECT_GT(res.at("ppl").get<double>(), 2.0);  // a trained model: far below the vocabulary's 512
    EXPECT_LT(res.at("ppl").get<double>(), 30.0);
    // The curve: at most 5 buckets whose counts add up to the scored tokens and whose weighted mean is the loss.
    const auto& buckets = res.at("position_buckets");
    ASSERT_GE(buckets.size(), 1u);
    EXPECT_LE(buckets.size(), 5u);
    EXPECT_EQ(buckets[0].at("first").get<int>(), 1);
    EXPECT_EQ(buckets.back().at("last").get<int>(), ctx - 1);
    double weighted = 0.0;
    int count = 0;
    for (const auto& b : buckets) {
      weighted += b.at("loss").get<double>() * b.at("scored_tokens").get<double>();
      count += b.at("scored_tokens").get<int>();
    }
    EXPECT_EQ(count, res.at("scored_tokens").get<int>());
    EXPECT_NEAR(weighted / count, res.at("loss").get<double>(), 1e-9);
    EXPECT_EQ(res.at("position_loss").size(), static_cast<std::size_t>(ctx - 1));
    // The model reads: the first token of a window is predicted worse than the later ones on average.
    EXPECT_GT(buckets[0].at("loss").get<double>(), res.at("loss").get<double>());
  }
  EXPECT_EQ(line_count(path("ppl.csv")), 3);  // header + one row per ctx
  EXPECT_GE(line_count(path("ppl_position.csv")), 1 + 2 * 4);
  if (have_gnuplot()) {
    EXPECT_GT(fs::file_size(path("ppl.png")), 1000u) << r.output;
  }
}

TEST_F(EvalCli, PplStridedSingleContextKeepsTopLevelFields) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = run_zebra("eval ppl " + stories_bin() + " " + stories_text() +
                           " --ctx 128 --stride 64 --max-tokens 512 --threads 1 -q --json " + path("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("strided windows"), std::string::npos) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path("s.json")));
  EXPECT_EQ(j.at("scheme").get<std::string>(), "strided");
  EXPECT_EQ(j.at("stride").get<int>(), 64);
  ASSERT_GE(j.at("data_tokens").get<int>(), 512);
  const int windows = (512 - 128) / 64 + 1;  // 7, covering all 512 tokens
  EXPECT_EQ(j.at("ctx").get<int>(), 128);
  EXPECT_EQ(j.at("windows").get<int>(), windows);
  EXPECT_EQ(j.at("scored_tokens").get<int>(), 127 + (windows - 1) * 64);
  EXPECT_DOUBLE_EQ(j.at("ppl").get<double>(), j.at("results")[0].at("ppl").get<double>());
}

TEST_F(EvalCli, PasskeyGridWritesJsonAndCsvAndWarnsWithoutGnuplot) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  ::setenv("ZEBRA_GNUPLOT", "/nonexistent/gnuplot", 1);
  const auto r = run_zebra("eval passkey " + stories_bin() +
                           " --lengths 96,192 --depths 0,0.5,1 --trials 2 "
                           "--seed 3 --threads 1 -q --json " +
                           path("pk.json") + " --csv " + path("pk.csv") + " --plot " + path("pk.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("depth\\length"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("warning: gnuplot"), std::string::npos) << r.output;  // a warning, not a failure
  EXPECT_NE(r.output.find("not found"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("pk.png")));
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path("pk.json")));
  EXPECT_EQ(j.at("eval").get<std::string>(), "passkey");
  EXPECT_EQ(j.at("total").get<int>(), 2 * 3 * 2);
  ASSERT_EQ(j.at("keys").size(), 2u);
  const auto& cells = j.at("cells");
  ASSERT_EQ(cells.size(), 6u);
  int correct = 0;
  for (const auto& c : cells) {
    EXPECT_LE(c.at("prompt_tokens").get<int>(), c.at("length").get<int>());
    EXPECT_GT(c.at("prompt_tokens").get<int>(), c.at("length").get<int>() - 16);
    EXPECT_EQ(c.at("trials").get<int>(), 2);
    ASSERT_EQ(c.at("outputs").size(), 2u);
    EXPECT_EQ(c.at("outputs")[0].at("key"), j.at("keys")[0]);
    correct += c.at("correct").get<int>();
  }
  EXPECT_EQ(correct, j.at("correct").get<int>());
  EXPECT_EQ(cells[0].at("key_position").get<int>(), 1);  // depth 0: right after BOS
  EXPECT_EQ(cells[2].at("depth").get<double>(), 0.5);
  EXPECT_EQ(cells[2].at("length").get<int>(), 96);
  EXPECT_EQ(line_count(path("pk.csv")), 7);
}

TEST_F(EvalCli, BadInputGivesAClearError) {
  std::ofstream(path("data.txt")) << "Once upon a time there was a cat.\n";
  const std::string ppl = "eval ppl " + stories_bin() + " " + path("data.txt");
  auto r = run_zebra(ppl + " --ctx 128,0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("every context length must be >= 2 tokens, got 0"), std::string::npos) << r.output;
  r = run_zebra(ppl + " --ctx 128,abc");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("expected integers, got 'abc'"), std::string::npos) << r.output;
  r = run_zebra(ppl + " --ctx 256,128 --stride 200");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--stride 200 exceeds --ctx 128"), std::string::npos) << r.output;
  r = run_zebra(ppl + " --ctx 128 --stride 64 --score-from 10");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("exclude each other"), std::string::npos) << r.output;
  r = run_zebra(ppl + " --ctx 128 --position-scale log");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("'geometric' or 'linear'"), std::string::npos) << r.output;

  r = run_zebra("eval passkey " + stories_bin() + " --depths 0,1.5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("depths must lie in [0, 1], got 1.5"), std::string::npos) << r.output;
  r = run_zebra("eval passkey " + stories_bin() + " --lengths 256,");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("empty item"), std::string::npos) << r.output;
  r = run_zebra("eval passkey " + stories_bin() + " --trials 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("trials must be >= 1"), std::string::npos) << r.output;
  if (test::shared_available()) {
    r = run_zebra("eval passkey " + stories_bin() + " --lengths 8 --threads 1");  // shorter than key + question
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("more than the length 8"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace zebra
