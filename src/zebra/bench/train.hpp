// zebra bench train: whole training steps (train/step.hpp) of a Zebra model and its full-attention twin across
// sequence lengths: tokens/s, MFU against the square-GEMM peak of the same run, peak memory against the plan.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/bench/statistics.hpp"
#include "zebra/bench/workload.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

struct TrainBenchOptions {
  ModelConfig config = default_bench_model();
  std::vector<std::int64_t> seq_lens{1024, 4096, 16384};
  std::int64_t batch = 1;
  int steps = 2;  // timed steps per row (after `warmup` untimed ones)
  int warmup = 1;
  // Recompute: "on", "off", or "auto" (on when the activations without it would exceed a quarter of RAM).
  std::string recompute = "auto";
  bool bf16 = false;         // RunOptions::bf16_matmul
  bool twin = true;          // also the full-attention twin
  double peak_gflops = 0.0;  // GEMM peak for MFU; 0 = measure (square 2048/4096) first
  ComputeOptions compute{};  // threads, attention kernel, SIMD path of the model (RunOptions::compute)
};

struct TrainRow {
  std::string model;  // "zebra" or "full"
  std::string pattern;
  std::int64_t seq_len = 0, batch = 1;
  bool recompute = false;
  Timing step;
  double tokens_per_s = 0.0;
  double model_flops_per_token = 0.0;  // FlopCount::training()
  double mfu = 0.0;                    // model FLOP/s over the GEMM peak
  double peak_rss_bytes = 0.0;         // VmHWM of this row (reset before it)
  double planned_bytes = 0.0;          // parameters, gradients, moments and Transformer::activation_bytes
  double loss = 0.0;                   // of the last step (sanity: ~ln(vocab) on random tokens)
};

struct TrainReport {
  MachineInfo machine;
  TrainBenchOptions options;
  std::int64_t parameters = 0;
  double peak_gflops = 0.0;
  std::vector<TrainRow> rows;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

TrainReport run_train(const TrainBenchOptions& options);

}  // namespace zebra::bench
