// `mpirun -np N zebra train ...` end to end (label "mpi"): data parallelism against one process accumulating
// the same micro-batches, bit-reproducibility, resuming with the same and with another number of ranks, context
// parallelism and the sharded optimizer, and a rank killed mid-run or failing.
//
// Tolerance of the loss comparisons: the ranks add their gradients after the backward pass, one process inside
// its GEMMs; that reorders fp32 sums (~1e-6 relative on a gradient element, data_parallel_ranks_test.cpp), and a
// few AdamW steps later the losses differ by far less than 1e-4 relative (a real error, a micro-batch lost or
// counted twice, moves them by ~1e-3).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;

// mpirun refuses root unless told (containers run as root).
std::string mpirun(int ranks) {
  return std::string(ZEBRA_MPIEXEC) + (::geteuid() == 0 ? " --allow-run-as-root" : "") + " --oversubscribe -np " +
         std::to_string(ranks) + " " + ZEBRA_BINARY;
}

// The "loss" of every step line of a run's metrics.jsonl, as written (so that equal strings mean equal bits).
std::vector<std::string> losses_of(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t at = line.find("\"loss\":");
    if (at == std::string::npos) continue;
    const std::size_t end = line.find_first_of(",}", at);
    out.push_back(line.substr(at + 7, end - at - 7));
  }
  return out;
}

void expect_losses_near(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = std::stod(got[i]), w = std::stod(want[i]);
    EXPECT_NEAR(g, w, 1e-4 * std::fabs(w)) << "step " << i + 1;
  }
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TrainMpi : public test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    std::ofstream corpus(dir_ / "corpus.txt");
    for (int i = 0; i < 400; ++i) {
      corpus << "In the beginning was the word, and the word was " << (i % 7) << " times spoken.\n";
    }
    corpus.close();
    test::write_tiny_config(dir_);
    auto r = test::run_zebra("prepare " + path("corpus.txt") + " -o " + path("data") +
                             " --vocab-size 300 --valid-fraction 0.1 --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // Training arguments: T = 48 (a multiple of 2 and 3), batches of 2, a step every log line.
  std::string args(const std::string& out, int steps) const {
    return " train --data " + path("data") + " --config " + path("config.json") + " -o " + path(out) + " --steps " +
           std::to_string(steps) +
           " -T 48 -b 2 --lr 3e-3 --warmup 2 --eval-every 0 --eval-batches 2 --log-every 1 --no-plot --threads 1";
  }
  std::string resume(const std::string& from, const std::string& out, int steps) const {
    return " train --data " + path("data") + " --resume " + path(from) + " -o " + path(out) + " --steps " +
           std::to_string(steps) +
           " -T 48 -b 2 --lr 3e-3 --warmup 2 --eval-every 0 --eval-batches 2 --log-every 1 --no-plot --threads 1";
  }
};

TEST_F(TrainMpi, DataParallelEqualsAccumulationAndIsBitReproducible) {
  auto one = test::run_zebra(args("one", 6) + " --grad-accum 2");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = test::run_command(mpirun(2) + args("two", 6));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("data parallel"), std::string::npos) << two.output;
  expect_losses_near(losses_of(dir_ / "two"), losses_of(dir_ / "one"));
  auto again = test::run_command(mpirun(2) + args("again", 6));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(losses_of(dir_ / "again"), losses_of(dir_ / "two"));
  EXPECT_EQ(file_bytes(dir_ / "again/checkpoint-00000006/model.safetensors"),
            file_bytes(dir_ / "two/checkpoint-00000006/model.safetensors"));
  // The sharded optimizer does the same arithmetic: the same bits.
  auto sharded = test::run_command(mpirun(2) + args("sharded", 6) + " --shard-optimizer");
  ASSERT_EQ(sharded.exit_code, 0) << sharded.output;
  EXPECT_EQ(losses_of(dir_ / "sharded"), losses_of(dir_ / "two"));
  EXPECT_EQ(file_bytes(dir_ / "sharded/checkpoint-00000006/trainer_state.safetensors"),
            file_bytes(dir_ / "two/checkpoint-00000006/trainer_state.safetensors"));
}

TEST_F(TrainMpi, ResumesWithTheSameAndAnotherNumberOfRanks) {
  auto whole = test::run_command(mpirun(2) + args("whole", 6) + " --save-every 3 --keep 0");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  // The same ranks: bit-identical to the uninterrupted run.
  auto same = test::run_command(mpirun(2) + resume("whole/checkpoint-00000003", "same", 6));
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_EQ(file_bytes(dir_ / "same/checkpoint-00000006/model.safetensors"),
            file_bytes(dir_ / "whole/checkpoint-00000006/model.safetensors"));
  const std::vector<std::string> w = losses_of(dir_ / "whole");
  EXPECT_EQ(losses_of(dir_ / "same"), std::vector<std::string>(w.begin() + 3, w.end()));
  // Three ranks from the two ranks' checkpoint (with sharded moments, re-cut): steps of 3 micro-batches from
  // where the data stopped, as one process accumulating 2 and then 3 micro-batches does.
  auto three = test::run_command(mpirun(3) + resume("whole/checkpoint-00000003", "three", 6) + " --shard-optimizer");
  ASSERT_EQ(three.exit_code, 0) << three.output;
  auto ref_first = test::run_zebra(args("ref", 6) + " --grad-accum 2 --save-every 3 --keep 0");
  ASSERT_EQ(ref_first.exit_code, 0) << ref_first.output;
  auto ref_rest = test::run_zebra(resume("ref/checkpoint-00000003", "ref2", 6) + " --grad-accum 3");
  ASSERT_EQ(ref_rest.exit_code, 0) << ref_rest.output;
  expect_losses_near(losses_of(dir_ / "three"), losses_of(dir_ / "ref2"));
}

TEST_F(TrainMpi, ContextParallelEqualsOneProcess) {
  auto one = test::run_zebra(args("one", 4) + " --doc-mask");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  for (int ranks : {2, 3}) {
    const std::string out = "cp" + std::to_string(ranks);
    auto cp = test::run_command(mpirun(ranks) + args(out, 4) + " --doc-mask --parallel context");
    ASSERT_EQ(cp.exit_code, 0) << cp.output;
    EXPECT_NE(cp.output.find("context parallel"), std::string::npos) << cp.output;
    expect_losses_near(losses_of(dir_ / out), losses_of(dir_ / "one"));
  }
}

TEST_F(TrainMpi, AFailingRankEndsTheJobNamingIt) {
  // 50 is no multiple of 3: every rank refuses, and the job ends instead of waiting.
  auto r = test::run_command(mpirun(3) + " train --data " + path("data") + " --config " + path("config.json") + " -o " +
                             path("bad") + " --steps 2 -T 50 --parallel context --no-plot");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("error on rank"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("multiple of the number of ranks"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "bad" / "checkpoint-00000002"));
}

TEST_F(TrainMpi, AKilledRankEndsTheJob) {
  // A long run; once it is training, rank 1 is killed outright. mpirun must end every rank and say so, soon.
  const std::string log = path("killed.log");
  const pid_t launcher = ::fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    const std::string cmd = "exec " + mpirun(2) + args("killed", 100000) + " > " + log + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for training to start (the first step line), then find rank 1 among mpirun's children.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool training = false;
  while (!training && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    training = file_bytes(log).find("step ") != std::string::npos;
  }
  ASSERT_TRUE(training) << file_bytes(log);
  auto ranks = test::run_command("pgrep -P " + std::to_string(launcher) + " -f 'zebra train'");
  std::vector<pid_t> pids;
  std::istringstream in(ranks.output);
  for (long p; in >> p;) pids.push_back(static_cast<pid_t>(p));
  ASSERT_EQ(pids.size(), 2u) << ranks.output;
  // Which is rank 1: its environment says.
  pid_t victim = -1;
  for (pid_t p : pids) {
    if (file_bytes("/proc/" + std::to_string(p) + "/environ").find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') !=
        std::string::npos) {
      victim = p;
    }
  }
  ASSERT_GT(victim, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  int status = 0;
  pid_t done = 0;
  while (done == 0 && std::chrono::steady_clock::now() < killed_at + std::chrono::seconds(60)) {
    done = ::waitpid(launcher, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (done == 0) {
    ::kill(launcher, SIGKILL);
    ::waitpid(launcher, &status, 0);
    FAIL() << "mpirun did not end within 60 s of rank 1's death:\n" << file_bytes(log);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << file_bytes(log);
  const std::string out = file_bytes(log);
  EXPECT_NE(out.find("rank 1"), std::string::npos) << out;
  EXPECT_NE(out.find("signal 9"), std::string::npos) << out;
  std::printf("the job ended %.2f s after rank 1 was killed\n", seconds);
}

}  // namespace
}  // namespace zebra
