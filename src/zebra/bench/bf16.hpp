// zebra bench bf16: the effect of BF16 matrix products (RunOptions::bf16_matmul) on the training loss: the same
// model, init and batches trained in fp32 and in bf16, both evaluated in fp32 on held-out tokens.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

struct PrecisionOptions {
  ModelConfig config;  // default: a small model (d 128, 4 layers) that learns in seconds
  std::int64_t seq_len = 256, batch = 4;
  int steps = 300;
  double lr = 3e-3;
  std::uint64_t seed = 1;
  // Folder written by `zebra prepare` (train.bin, valid.bin): train and evaluate on its first tokens instead of
  // the synthetic language; the config's vocabulary is widened to the dataset's when smaller.
  std::string data_dir;
  ComputeOptions compute{};  // as TrainBenchOptions::compute
};

struct PrecisionReport {
  MachineInfo machine;
  PrecisionOptions options;
  std::vector<double> loss_fp32, loss_bf16;  // training loss per step (same data, same init)
  double eval_fp32 = 0.0, eval_bf16 = 0.0;   // held-out loss at the end, both evaluated in fp32
  double seconds_fp32 = 0.0, seconds_bf16 = 0.0;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

PrecisionReport run_precision(const PrecisionOptions& options);

}  // namespace zebra::bench
