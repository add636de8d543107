#include "zebra/bench/machine.hpp"

#include "zebra/ops/attention.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <fstream>

#include "zebra/ops/cpu_features.hpp"

namespace zebra::bench {

namespace {

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0.0;
  in >> one;
  return one;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(std::min(line.size(), colon + 2));
    }
  }
  return "unknown";
}

}  // namespace

MachineInfo machine_info(const ComputeOptions& options) {
  MachineInfo m;
  m.cpu = cpu_model();
  m.threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  m.simd = to_string(resolve_attention_kernel(options));
  const char* core = openblas_get_corename();
  m.blas_core = core != nullptr ? core : "?";
  m.load_before = load_average();
  return m;
}

void finish_machine_info(MachineInfo& m) { m.load_after = load_average(); }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

}  // namespace zebra::bench
