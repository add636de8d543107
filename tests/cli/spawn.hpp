// Starting the zebra binary as a child process that a fault test can kill, starve of disk or of write permission.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_paths.hpp"

namespace zebra::test {

struct SpawnOptions {
  std::string log;                // stdout and stderr go here ("" = /dev/null)
  long long max_file_bytes = -1;  // RLIMIT_FSIZE: a write past it fails with EFBIG (SIGXFSZ is ignored)
  bool unprivileged = false;      // run as nobody when the tests run as root (so that permissions apply)
};

// Forks and execs ZEBRA_BINARY with `args`; returns the child's pid.
inline pid_t spawn_zebra(const std::vector<std::string>& args, const SpawnOptions& o = {}) {
  std::vector<std::string> argv_s = {ZEBRA_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls until exec.
  const int fd = ::open(o.log.empty() ? "/dev/null" : o.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  // A shell's background job ignores SIGINT, and children inherit that: the tests send it on purpose.
  ::signal(SIGINT, SIG_DFL);
  if (o.max_file_bytes >= 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // kept across exec: the write fails with EFBIG instead of killing
    const rlimit lim{static_cast<rlim_t>(o.max_file_bytes), static_cast<rlim_t>(o.max_file_bytes)};
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  if (o.unprivileged && ::geteuid() == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
  }
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// Waits for the child; its exit code, or 128 + the signal that ended it.
inline int wait_child(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A fresh folder zebra_<name>_<pid> under the system's temporary folder, readable by everyone (an unprivileged
// child reads its inputs there).
inline std::filesystem::path fault_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("zebra_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  return dir;
}

// The text of a child's log ("" when it wrote none).
inline std::string log_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline int run_zebra_with(const std::vector<std::string>& args, const SpawnOptions& o = {}) {
  return wait_child(spawn_zebra(args, o));
}

struct ChildResult {
  int exit_code = -1;  // 126: the child could not drop privileges
  std::string log;
};

// Runs zebra with `folder` read-only (as nobody when the tests run as root, so that the mode applies), then
// makes the folder writable again.
inline ChildResult run_with_read_only(const std::filesystem::path& folder, const std::vector<std::string>& args,
                                      const std::filesystem::path& log) {
  namespace fs = std::filesystem;
  const fs::perms readable =
      fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(folder, fs::perms::owner_read | fs::perms::owner_exec | readable);
  SpawnOptions o;
  o.log = log.string();
  o.unprivileged = true;
  const int rc = run_zebra_with(args, o);
  fs::permissions(folder, fs::perms::owner_all | readable);
  return {rc, log_text(log)};
}

}  // namespace zebra::test
