// zebra bench attention: one attention layer's forward and forward+backward across sequence lengths and
// windows, each local window against the global layer of the same T measured in the same run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/bench/statistics.hpp"

namespace zebra::bench {

struct AttentionOptions {
  std::int64_t batch = 1, n_heads = 8, n_kv_heads = 4, head_dim = 64;
  std::vector<std::int64_t> seq_lens{1024, 4096, 16384, 65536};
  std::vector<std::int64_t> windows{128, 512, 2048};
  int repeats = 3;
  // Global layers of longer sequences are measured forward only (forward + backward at T = 64k takes
  // minutes); 0 = no limit.
  std::int64_t max_global_backward_seq = 0;
  // Sequences longer than this skip the global layer entirely; 0 = no limit.
  std::int64_t max_global_seq = 0;
  // Repeats drop to 1 (no warm-up) when one call takes longer than this many seconds.
  double long_call_s = 20.0;
  ComputeOptions compute{};  // threads, attention kernel
};

struct AttentionRow {
  std::int64_t seq_len = 0;
  std::int64_t window = 0;    // kGlobalWindow for the global layer
  double fwd_flops = 0.0;     // 4 * hd * H * B * visible pairs
  double fwdbwd_flops = 0.0;  // 3.5 x fwd_flops: backward = 5 products incl. the recomputed QK^T
  Timing fwd, fwdbwd;         // fwdbwd.runs empty when not measured
  double fwd_gflops = 0.0, fwdbwd_gflops = 0.0;
  // Against the global layer of the same T, measured in the same run (0 when either is missing).
  double speedup_fwd = 0.0, speedup_fwdbwd = 0.0;
  double flop_ratio = 0.0;  // visible pairs global / local
};

struct AttentionReport {
  MachineInfo machine;
  AttentionOptions options;
  std::vector<AttentionRow> rows;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

AttentionReport run_attention(const AttentionOptions& options);

}  // namespace zebra::bench
