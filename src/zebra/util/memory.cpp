#include "zebra/util/memory.hpp"

#include <fstream>
#include <sstream>
#include <string>

namespace zebra {

namespace {

// The value in kB of a "Key:   123 kB" line of a /proc file, in bytes.
std::int64_t proc_kb_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream fields(line.substr(key.size()));
      std::int64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace

std::int64_t available_memory_bytes() { return proc_kb_field("/proc/meminfo", "MemAvailable:"); }
std::int64_t peak_rss_bytes() { return proc_kb_field("/proc/self/status", "VmHWM:"); }

}  // namespace zebra
