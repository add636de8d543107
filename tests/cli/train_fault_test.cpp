// Faults during training, against the zebra binary: kill -9 at random moments (inside checkpoint writes too), a
// full disk (RLIMIT_FSIZE) and a read-only folder while a checkpoint is written, a NaN in the weights. What
// must hold: the last complete checkpoint loads, a resume from it ends bit-identical to an uninterrupted run,
// an error names the cause, nothing half-written appears under a checkpoint's real name and the previous
// checkpoint is left as it was. Label cli_fault (scripts/test.sh runs it in CI); ZEBRA_FAULT_TRIALS sets the
// number of kill trials (default 50).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/spawn.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::run_zebra_with;
using test::SpawnOptions;

constexpr int kSteps = 12;

class TrainFault : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = test::fault_temp_dir("train_fault");
    {
      std::ofstream corpus(root_ / "corpus.txt");
      for (int i = 0; i < 400; ++i) corpus << "The zebra's stripes number " << (i % 11) << " on the left side.\n";
    }
    {
      std::ofstream config(root_ / "config.json");
      config << R"({"vocab_size": 300, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "num_key_value_heads": 1, "intermediate_size": 32, "max_position_embeddings": 64,
                    "group_size": 2, "sliding_window": 8})";
    }
    ASSERT_EQ(run_zebra_with({"prepare", (root_ / "corpus.txt").string(), "-o", (root_ / "data").string(),
                              "--vocab-size", "300", "--quiet"}),
              0);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static std::vector<std::string> train_args(const fs::path& out, int steps, bool resume) {
    std::vector<std::string> a = {"train", "--data", (root_ / "data").string(), "-o", out.string()};
    if (resume) {
      a.insert(a.end(), {"--resume", out.string()});
    } else {
      a.insert(a.end(), {"--config", (root_ / "config.json").string()});
    }
    a.insert(a.end(), {"--steps", std::to_string(steps), "-T", "16", "-b", "2", "--save-every", "1", "--keep", "2",
                       "--eval-every", "1000", "--log-every", "1", "--no-plot", "--threads", "1", "--seed", "3"});
    return a;
  }
  // The bytes that must agree between runs: weights and optimizer moments.
  static std::string state_bytes(const std::string& checkpoint) {
    return read_file((fs::path(checkpoint) / "model.safetensors").string()) +
           read_file((fs::path(checkpoint) / "trainer_state.safetensors").string());
  }
  static bool has_temporary(const fs::path& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
    }
    return false;
  }

  static fs::path root_;
};
fs::path TrainFault::root_;

// kill -9 at uniformly random moments of a run that writes a checkpoint after every step.
TEST_F(TrainFault, KillNineAnywhereThenResumeIsBitIdentical) {
  const fs::path ref = root_ / "ref";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_zebra_with(train_args(ref, kSteps, false), {(root_ / "ref.log").string()}), 0)
      << test::log_text(root_ / "ref.log");
  const double run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string expected = state_bytes(list_checkpoints(ref.string()).back());

  const char* env = std::getenv("ZEBRA_FAULT_TRIALS");
  const int trials = env != nullptr ? std::atoi(env) : 50;
  Rng rng(2024);
  int inside_write = 0, with_checkpoint = 0, finished = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    const fs::path dir = root_ / ("kill" + std::to_string(t));
    const pid_t pid = test::spawn_zebra(train_args(dir, kSteps, false));
    std::this_thread::sleep_for(std::chrono::duration<double>(rng.uniform() * run_seconds));
    ::kill(pid, SIGKILL);
    if (test::wait_child(pid) == 0) ++finished;
    if (fs::exists(dir) && has_temporary(dir)) ++inside_write;
    const std::vector<std::string> cks = list_checkpoints(dir.string());
    if (!cks.empty()) {
      ++with_checkpoint;
      ASSERT_NO_THROW(load_checkpoint(cks.back())) << cks.back();
    }
    const fs::path log = root_ / ("resume" + std::to_string(t) + ".log");
    ASSERT_EQ(run_zebra_with(train_args(dir, kSteps, !cks.empty()), {log.string()}), 0) << test::log_text(log);
    const std::vector<std::string> after = list_checkpoints(dir.string());
    ASSERT_FALSE(after.empty());
    ASSERT_NE(after.back().find(checkpoint_name(kSteps)), std::string::npos);
    EXPECT_TRUE(state_bytes(after.back()) == expected) << "resume did not end bit-identical";
    fs::remove_all(dir);
  }
  std::printf(
      "[fault] kill -9: %d trials, %d killed inside a checkpoint write (a temporary left behind), %d with "
      "a checkpoint to resume from, %d had finished; all resumed bit-identical\n",
      trials, inside_write, with_checkpoint, finished);
  // The moments must reach both kinds of state, or the loop tests less than it claims.
  EXPECT_GT(inside_write, 0);
  EXPECT_GT(with_checkpoint, 0);
  EXPECT_LT(with_checkpoint, trials + 1);
}

// A full disk while the next checkpoint is written: a clear error, no checkpoint under the new name, the
// previous one unchanged.
TEST_F(TrainFault, FullDiskDuringACheckpointKeepsThePreviousOne) {
  const fs::path dir = root_ / "full";
  ASSERT_EQ(run_zebra_with(train_args(dir, 2, false)), 0);
  const std::string previous = list_checkpoints(dir.string()).back();
  const std::string before = state_bytes(previous);
  const auto weights_size = static_cast<long long>(fs::file_size(fs::path(previous) / "model.safetensors"));
  SpawnOptions o;
  o.log = (root_ / "full.log").string();
  o.max_file_bytes = weights_size / 2;
  EXPECT_NE(run_zebra_with(train_args(dir, 4, true), o), 0);
  const std::string log = test::log_text(root_ / "full.log");
  EXPECT_NE(log.find("File too large"), std::string::npos) << log;
  EXPECT_NE(log.find("checkpoint-00000003"), std::string::npos) << log;
  EXPECT_EQ(list_checkpoints(dir.string()).back(), previous);
  EXPECT_EQ(state_bytes(previous), before);
  EXPECT_NO_THROW(load_checkpoint(previous));
  EXPECT_FALSE(has_temporary(dir)) << "a temporary was left behind";
}

// A run folder that became read-only: the error names it, the checkpoint in it is unchanged. As root, the child
// runs as nobody so that the permission applies.
TEST_F(TrainFault, ReadOnlyOutputFolderIsAClearError) {
  const fs::path dir = root_ / "readonly";
  ASSERT_EQ(run_zebra_with(train_args(dir, 2, false)), 0);
  const std::string previous = list_checkpoints(dir.string()).back();
  const std::string before = state_bytes(previous);
  const test::ChildResult r = test::run_with_read_only(dir, train_args(dir, 4, true), root_ / "readonly.log");
  ASSERT_NE(r.exit_code, 126) << "cannot drop privileges to test permissions";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.log.find("Permission denied"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find(dir.string()), std::string::npos) << r.log;
  EXPECT_EQ(list_checkpoints(dir.string()).back(), previous);
  EXPECT_EQ(state_bytes(previous), before);
  // And a new run into a read-only folder: refused before any training.
  const fs::path ro = root_ / "ro_parent";
  fs::create_directories(ro);
  EXPECT_NE(test::run_with_read_only(ro, train_args(ro / "run", 2, false), root_ / "ro_parent.log").exit_code, 0);
  EXPECT_FALSE(fs::exists(ro / "run" / checkpoint_name(1)));
}

// NaN weights (a checkpoint written by a diverged run, or a damaged one): training stops at the first step with
// the loss named, and writes no checkpoint from it.
TEST_F(TrainFault, NanInTheWeightsStopsTrainingCleanly) {
  const fs::path dir = root_ / "nan";
  ASSERT_EQ(run_zebra_with(train_args(dir, 2, false)), 0);
  const std::string ck = list_checkpoints(dir.string()).back();
  const std::string weights = (fs::path(ck) / "model.safetensors").string();
  std::string bytes = read_file(weights);
  std::uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const float nan = std::nanf("");
  for (std::size_t at = 8 + header; at + 4 <= bytes.size(); at += 4 * 97) std::memcpy(bytes.data() + at, &nan, 4);
  write_file_atomic(weights, bytes);
  const std::string poisoned = state_bytes(ck);
  SpawnOptions o;
  o.log = (root_ / "nan.log").string();
  EXPECT_EQ(run_zebra_with(train_args(dir, 4, true), o), 1);
  const std::string log = test::log_text(root_ / "nan.log");
  EXPECT_NE(log.find("training stopped: the "), std::string::npos) << log;
  EXPECT_EQ(list_checkpoints(dir.string()).back(), ck);
  EXPECT_EQ(state_bytes(ck), poisoned);
}

}  // namespace
}  // namespace zebra
