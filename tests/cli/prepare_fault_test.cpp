// Faults during `zebra prepare`: a full disk (RLIMIT_FSIZE), a read-only output folder, SIGINT at random moments.
// A dataset appears under its real name complete or not at all. Label cli_fault.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/spawn.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::run_zebra_with;
using test::SpawnOptions;

class PrepareFault : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fault_temp_dir("prepare_fault");
    std::ofstream corpus(dir_ / "corpus.txt");
    Rng rng(5);
    const char* words[] = {"zebra", "stripes", "local", "global", "window", "attention", "the", "of", "layer"};
    for (int line = 0; line < 40000; ++line) {
      for (int w = 0; w < 8; ++w) corpus << words[rng.below(9)] << (w == 7 ? '\n' : ' ');
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::vector<std::string> prepare_args(const fs::path& out) const {
    return {"prepare",
            (dir_ / "corpus.txt").string(),
            "-o",
            out.string(),
            "--vocab-size",
            "300",
            "--valid-fraction",
            "0.05",
            "--quiet"};
  }
  static bool has_dataset_under_real_name(const fs::path& out) {
    return fs::exists(out / "train.bin") || fs::exists(out / "valid.bin");
  }
  fs::path dir_;
};

TEST_F(PrepareFault, FullDiskIsAClearErrorAndLeavesNoDataset) {
  SpawnOptions o;
  o.log = (dir_ / "full.log").string();
  o.max_file_bytes = 64 * 1024;  // the tokenizer fits; train.bin (about 600 KB) does not
  EXPECT_NE(run_zebra_with(prepare_args(dir_ / "out"), o), 0);
  const std::string log = test::log_text(dir_ / "full.log");
  EXPECT_NE(log.find("File too large"), std::string::npos) << log;
  EXPECT_NE(log.find("train.bin"), std::string::npos) << log;
  EXPECT_FALSE(has_dataset_under_real_name(dir_ / "out"));
  for (const auto& e : fs::directory_iterator(dir_ / "out")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path() << " left behind";
  }
}

TEST_F(PrepareFault, ReadOnlyOutputFolderIsAClearError) {
  const fs::path out = dir_ / "ro";
  fs::create_directories(out);
  const test::ChildResult r = test::run_with_read_only(out, prepare_args(out), dir_ / "ro.log");
  ASSERT_NE(r.exit_code, 126) << "cannot drop privileges to test permissions";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.log.find("Permission denied"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find(out.string()), std::string::npos) << r.log;
  EXPECT_TRUE(fs::is_empty(out));
}

// SIGINT at uniformly random moments of a whole prepare (tokenizer training, then tokenizing).
TEST_F(PrepareFault, InterruptAnywhereLeavesNoPartialDataset) {
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_zebra_with(prepare_args(dir_ / "ref")), 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Rng rng(11);
  const int trials = 12;
  int interrupted = 0, temporaries = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    const fs::path out = dir_ / ("int" + std::to_string(t));
    const pid_t pid = test::spawn_zebra(prepare_args(out));
    std::this_thread::sleep_for(std::chrono::duration<double>(rng.uniform() * seconds));
    ::kill(pid, SIGINT);
    const int rc = test::wait_child(pid);
    if (rc == 0) {
      EXPECT_NO_THROW(TokenDataset::open((out / "train.bin").string()));
    } else {
      ++interrupted;
      EXPECT_FALSE(has_dataset_under_real_name(out)) << "exit " << rc;
      if (fs::exists(out)) {
        for (const auto& e : fs::directory_iterator(out)) {
          temporaries += e.path().filename().string().find(".tmp") != std::string::npos ? 1 : 0;
        }
      }
    }
    fs::remove_all(out);
  }
  std::printf(
      "[fault] SIGINT during prepare: %d trials, %d interrupted, none left a dataset under its name (%d temporaries "
      "*.tmp.<pid> left behind)\n",
      trials, interrupted, temporaries);
  EXPECT_GT(interrupted, 0);
  EXPECT_EQ(temporaries, 0);
}

}  // namespace
}  // namespace zebra
