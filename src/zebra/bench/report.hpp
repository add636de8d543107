// What every mode's report shares in its table and its JSON: the timing summary and the machine line.
#pragma once

#include <cstdio>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/bench/statistics.hpp"

namespace zebra::bench {

// {"min_s", "median_s", "runs_s"}
nlohmann::json timing_json(const Timing& t);
// {"cpu", "threads", "simd", "blas_core", "load_before", "load_after"}
nlohmann::json machine_json(const MachineInfo& m);
// "machine: CPU, N threads, attention path P, OpenBLAS core C, load A -> B"
void print_machine(std::FILE* out, const MachineInfo& m);

}  // namespace zebra::bench
