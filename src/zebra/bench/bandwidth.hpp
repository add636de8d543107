// zebra bench bandwidth: the machine's memory bandwidth, the bound of a decode step. A decode step reads every
// weight once (and the KV cache it attends to), so tokens/s can be at most bandwidth / bytes read per token;
// docs/performance.md compares decode with this bound.
//
// Three kernels over buffers much larger than the last-level cache, split across the threads:
//   read   sum of 64-bit words (what a matrix-vector product does to its weights)
//   write  fill with a constant
//   copy   dst = src (reads + writes)
// Bytes per run: read n, write n, copy 2n (a write-allocate cache also reads what it writes; not counted, as in
// STREAM).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/bench/statistics.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

struct BandwidthOptions {
  std::int64_t bytes = std::int64_t{512} << 20;  // per buffer; copy uses two
  int repeats = 7;
  ComputeOptions compute{};  // threads
};

struct BandwidthRow {
  std::string kernel;      // "read", "write", "copy"
  std::int64_t bytes = 0;  // moved per run
  Timing t;
  double gb_per_s = 0.0;  // bytes / min time / 1e9
};

struct BandwidthReport {
  MachineInfo machine;
  BandwidthOptions options;
  std::vector<BandwidthRow> rows;
  std::uint64_t checksum = 0;  // of the read kernel's last run: keeps the reads from being optimised away
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

// Sum of `words` 64-bit words with `threads` threads (0: the caller's OpenMP default).
std::uint64_t read_words(const std::uint64_t* words, std::int64_t n, int threads);

BandwidthReport run_bandwidth(const BandwidthOptions& options);

}  // namespace zebra::bench
