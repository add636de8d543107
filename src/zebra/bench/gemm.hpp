// zebra bench gemm: GEMM GFLOP/s on the shapes of a real training step against the best square GEMM of the
// same run, per backend (ops/matmul.hpp GemmBackend) and precision.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/bench/machine.hpp"
#include "zebra/bench/statistics.hpp"
#include "zebra/bench/workload.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

struct GemmOptions {
  ModelConfig config = default_bench_model();
  std::int64_t tokens = 4096;                                // B * T of the training step whose shapes are measured
  std::int64_t loss_chunk = 256;                             // rows per lm-head chunk (RunOptions::loss_chunk)
  std::vector<std::int64_t> square_sizes{1024, 2048, 4096};  // the "best the machine reaches"
  int repeats = 5;
  bool bf16 = false;         // measure the BF16 product path too
  ComputeOptions compute{};  // threads (its gemm member is replaced per measured backend)
};

struct GemmRow {
  std::string name;  // e.g. "qkv fwd"
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t per_step = 0;  // how many times one training step runs this product
  std::string precision = "fp32";
  std::string backend;  // GemmBackend (ops/matmul.hpp)
  Timing t;
  double gflops = 0.0;  // 2 m n k / min time
};

struct GemmReport {
  MachineInfo machine;
  GemmOptions options;
  std::vector<GemmRow> squares;  // square products
  std::vector<GemmRow> shapes;   // the training step's products, per backend and precision
  double peak_gflops = 0.0;      // best square fp32 rate (either backend)
  // All step products: sum of FLOPs / sum of (per_step * time), per "backend precision" ("chunked fp32", ...).
  std::vector<std::pair<std::string, double>> step_gflops;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

GemmReport run_gemm(const GemmOptions& options);

}  // namespace zebra::bench
