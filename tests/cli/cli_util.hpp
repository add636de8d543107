// Running the zebra binary from tests, in a temporary folder of their own.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_paths.hpp"

namespace zebra::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// A shell command line (mpirun, pipelines), stdout and stderr together.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  const std::string cmd = command + " 2>&1";
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline CommandResult run_zebra(const std::string& args) { return run_command(std::string(ZEBRA_BINARY) + " " + args); }

// The small model of the training CLI tests, written to DIR/config.json (returned): 4 layers of width 32 (pattern
// GLGL, window 16), GQA 4/2 heads, vocabulary 300, 128 positions; a step takes milliseconds.
inline std::string write_tiny_config(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "config.json";
  std::ofstream config(file);
  config << R"({"vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
                "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
                "group_size": 2, "sliding_window": 16})";
  return file.string();
}

// A fixture whose tests each get a fresh folder, zebra_<suite>_<pid> under the system's temporary folder,
// removed afterwards. Fixtures that prepare more call CliTest::SetUp() first.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("zebra_") + info->test_suite_name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

// The llama2.c stories260K checkpoint in ../shared (tests using it skip without ../shared).
inline std::string stories_dir() { return shared_dir() + "/models/stories260K"; }
inline std::string stories_bin() { return stories_dir() + "/stories260K.bin"; }

}  // namespace zebra::test
