// zebra prepare + train from the command line: the happy path, Ctrl-C, resume, and bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/cli_util.hpp"
#include "zebra/train/checkpoint.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::run_zebra;

class TrainCli : public test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    std::ofstream corpus(dir_ / "corpus.txt");
    for (int i = 0; i < 300; ++i) {
      corpus << "In the beginning was the word, and the word was " << (i % 7) << " times spoken.\n";
      if (i % 50 == 49) corpus << "\n\n";
    }
    corpus << "bad bytes: \xff\xfe end\n";
    corpus.close();
    test::write_tiny_config(dir_);
    auto r = run_zebra("prepare " + (dir_ / "corpus.txt").string() + " -o " + (dir_ / "data").string() +
                       " --vocab-size 300 --valid-fraction 0.1 --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  std::string train_args(const std::string& out, int steps) const {
    return "train --data " + (dir_ / "data").string() + " --config " + (dir_ / "config.json").string() + " -o " +
           (dir_ / out).string() + " --steps " + std::to_string(steps) +
           " -T 32 -b 2 --eval-every 5 --eval-batches 2 --log-every 5 --no-plot --threads 1";
  }
};

TEST_F(TrainCli, TrainsReportsLossesAndResumes) {
  auto r = run_zebra(train_args("run", 10) + " --samples 1 --sample-tokens 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("held-out loss:"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "metrics.jsonl"));
  EXPECT_EQ(list_checkpoints((dir_ / "run").string()).size(), 1u);
  // Resuming a finished run with more steps continues from step 10.
  r = run_zebra("train --data " + (dir_ / "data").string() + " --resume " + (dir_ / "run").string() + " -o " +
                (dir_ / "run").string() + " --steps 14 -T 32 -b 2 --no-plot --log-every 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step     14/14"), std::string::npos) << r.output;
}

TEST_F(TrainCli, InterruptWritesACheckpointAndExitsCleanly) {
  const std::string cmd =
      std::string(ZEBRA_BINARY) + " " + train_args("run", 100000) + " > " + (dir_ / "log.txt").string() + " 2>&1";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until training has started (the first progress line), then interrupt.
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream log(dir_ / "log.txt");
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    if (text.find("step ") != std::string::npos && text.find("/100000") != std::string::npos) break;
  }
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream log(dir_ / "log.txt");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
  EXPECT_NE(text.find("interrupted"), std::string::npos) << text;
  ASSERT_EQ(list_checkpoints((dir_ / "run").string()).size(), 1u) << text;
  EXPECT_NO_THROW(load_checkpoint(list_checkpoints((dir_ / "run").string()).back()));
}

TEST_F(TrainCli, BadInputGetsAClearError) {
  auto r = run_zebra(train_args("run", 10) + " --bogus-flag");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("bogus-flag"), std::string::npos) << r.output;
  r = run_zebra(train_args("run", 10) + " --window 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("window"), std::string::npos) << r.output;
  r = run_zebra("train --data " + (dir_ / "nope").string() + " --config " + (dir_ / "config.json").string() + " -o " +
                (dir_ / "run2").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nope"), std::string::npos) << r.output;
  // A step that cannot fit in RAM is refused before training, with the memory it needs and what would help.
  r = run_zebra("train --data " + (dir_ / "data").string() + " --config " + (dir_ / "config.json").string() + " -o " +
                (dir_ / "run4").string() + " --steps 1 -T 32 -b 200000 --no-plot --threads 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("MiB are available"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--recompute would need"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "run4" / "metrics.jsonl"));
  // A resume from a truncated checkpoint is refused, naming the file.
  ASSERT_EQ(run_zebra(train_args("run3", 2)).exit_code, 0);
  const std::string ck = list_checkpoints((dir_ / "run3").string()).back();
  fs::resize_file(fs::path(ck) / "model.safetensors", 100);
  r = run_zebra("train --data " + (dir_ / "data").string() + " --resume " + (dir_ / "run3").string() + " -o " +
                (dir_ / "run3").string() + " --steps 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zebra
