// The LIT pipeline from the command line on the real stories260K checkpoint: zebra tasks from two disjoint sets of
// books, zebra prepare --chat, zebra train --chat-data from the checkpoint, zebra eval tasks on the result.
// Everything runs with --threads 1: the model is tiny, and the test machine is shared.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_util.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::CliTest;
using test::run_zebra;
using test::stories_bin;
using test::stories_dir;

class LitCli : public CliTest {
 protected:
  // Books of three chapters, each of 20 paragraphs of two unique sentences, as Gutenberg-style JSONL.
  std::string write_books(const std::string& name, const std::string& prefix) {
    std::string jsonl;
    for (int b = 0; b < 2; ++b) {
      std::string text;
      for (int c = 0; c < 3; ++c) {
        text += "CHAPTER " + std::string(c + 1, 'I') + ".\n\n";
        for (int p = 0; p < 20; ++p) {
          for (int s = 0; s < 2; ++s) {
            text += "The " + prefix + std::to_string(b) + " cat saw dog " + std::to_string(c * 100 + p) +
                    " near tree " + std::to_string(s) + ". ";
          }
          text += "\n\n";
        }
      }
      jsonl += nlohmann::json{{"title", prefix + std::to_string(b)}, {"text", text}}.dump() + "\n";
    }
    write_file_atomic(path(name), jsonl);
    return path(name);
  }
};

TEST_F(LitCli, TasksPrepareTrainAndEvaluate) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const std::string tok = stories_dir() + "/tok512.bin";
  const std::string train_books = write_books("train_books.jsonl", "alpha"),
                    test_books = write_books("test_books.jsonl", "beta");
  auto r = run_zebra("tasks --tokenizer " + tok + " --train-books " + train_books + " --test-books " + test_books +
                     " -o " + path("tasks") + " --train-lengths 400 --test-lengths 400 --train-depths 0.5" +
                     " --test-depths 0.5 --train-per-cell 2 --test-per-cell 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("train: 8 tasks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("test: 4 tasks"), std::string::npos) << r.output;

  // The same book in both sets is refused.
  r = run_zebra("tasks --tokenizer " + tok + " --train-books " + train_books + " --test-books " + train_books + " -o " +
                path("mixed"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("must not mix"), std::string::npos) << r.output;

  // Instruction data needs the model's tokenizer.
  r = run_zebra("prepare --chat " + path("tasks/train.jsonl") + " -o " + path("data"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--tokenizer"), std::string::npos) << r.output;
  r = run_zebra("prepare --chat " + path("tasks/train.jsonl") + " --tokenizer " + tok + " -T 512 -o " + path("data"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("train: 8 conversations of 8 records"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("template plain"), std::string::npos) << r.output;

  r = run_zebra("train --chat-data " + path("data") + " --init " + stories_bin() + " -o " + path("run") +
                " -T 256 -b 1 --steps 2 --eval-every 0 --log-every 1 --no-plot --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(the answers)"), std::string::npos) << r.output;
  const std::string ck = path("run/checkpoint-00000002");
  ASSERT_TRUE(fs::exists(ck)) << r.output;

  r = run_zebra("eval tasks " + ck + " --tasks " + path("tasks/test.jsonl") + " --json " + path("eval.json") +
                " --csv " + path("eval.csv") + " --threads 1 -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy: "), std::string::npos) << r.output;
  std::ifstream in(path("eval.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["total"], 4);
  ASSERT_EQ(j["outputs"].size(), 4u);
  for (const auto& o : j["outputs"]) {
    EXPECT_LE(o["prompt_tokens"].get<int>(), 400);
    EXPECT_TRUE(o.contains("reply"));
  }
  EXPECT_TRUE(fs::exists(path("eval_depth.csv")));

  r = run_zebra("eval tasks " + ck + " --tasks " + path("tasks/test.jsonl") + " --kinds riddle --threads 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown task kind 'riddle'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zebra
