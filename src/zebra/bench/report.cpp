#include "zebra/bench/report.hpp"

#include <nlohmann/json.hpp>

namespace zebra::bench {

using nlohmann::json;

json timing_json(const Timing& t) { return json{{"min_s", t.min_s}, {"median_s", t.median_s}, {"runs_s", t.runs_s}}; }

json machine_json(const MachineInfo& m) {
  return json{{"cpu", m.cpu},
              {"threads", m.threads},
              {"simd", m.simd},
              {"blas_core", m.blas_core},
              {"load_before", m.load_before},
              {"load_after", m.load_after}};
}

void print_machine(std::FILE* out, const MachineInfo& m) {
  std::fprintf(out, "machine: %s, %d threads, attention path %s, OpenBLAS core %s, load %.2f -> %.2f\n", m.cpu.c_str(),
               m.threads, m.simd.c_str(), m.blas_core.c_str(), m.load_before, m.load_after);
}

}  // namespace zebra::bench
