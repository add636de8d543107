// Where and under what load a benchmark ran: CPU model, threads, ISA paths, load average before and after
// (a measurement taken under load is worth little, and the report says so), and the peak-RSS reset that lets
// a measurement report its own peak memory.
#pragma once

#include <string>

#include "zebra/ops/compute.hpp"

namespace zebra::bench {

struct MachineInfo {
  std::string cpu;
  int threads = 0;
  std::string simd;                            // attention kernel in use
  std::string blas_core;                       // OpenBLAS core name
  double load_before = 0.0, load_after = 0.0;  // 1-minute load average
};
// threads and the attention kernel as `options` resolve them on the calling thread.
MachineInfo machine_info(const ComputeOptions& options);
void finish_machine_info(MachineInfo& m);  // fills load_after

// Resets the peak resident set size of this process (Linux >= 4.0), so that VmHWM afterwards is the peak
// of what follows. Returns false when the kernel refuses.
bool reset_peak_rss();

}  // namespace zebra::bench
