// zebra bench quant: matrix-vector products (one decode row) over weights of each storage type, as GB/s of
// weight bytes read, next to the read bandwidth of bench/bandwidth.hpp. The weights are `matrices` copies of a
// [rows, cols] matrix (the SmolLM2 FFN shape by default), together far larger than the last-level cache, each
// multiplied once per run in turn as a decode step does.
//
// Routes: "q8act" (activations quantized to 8-bit blocks, integer dot products: Q8_0, Q4_0, Q4_1 as ggml
// stores them and in zebra's repacked layouts Q8_0R, Q4_0R, Q4_1R, which inference loads use), "unpacked"
// (weight rows dequantised to fp32 in L1, then fp32 products: every block type), and the dense types' own
// kernels (F32: the BLAS; BF16 / F16: simd/weight_kernels.hpp).
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

struct QuantOptions {
  std::int64_t rows = 1536, cols = 576;
  std::int64_t total_bytes = std::int64_t{256} << 20;  // of fp32 weights' worth: matrices = this / (rows cols 4)
  int repeats = 5;
  ComputeOptions compute{};
};

struct QuantRow {
  std::string dtype, route;
  std::int64_t bytes = 0;  // weight bytes read per run
  Timing t;
  double gb_per_s = 0.0;
  double weights_per_ns = 0.0;  // multiply-adds per nanosecond
};

struct QuantReport {
  MachineInfo machine;
  QuantOptions options;
  std::int64_t matrices = 0;
  double read_gb_per_s = 0.0;  // bench bandwidth's read kernel over the same bytes as F32
  std::vector<QuantRow> rows;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

QuantReport run_quant(const QuantOptions& options);

}  // namespace zebra::bench
