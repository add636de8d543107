// The measurements behind `zebra bench` (docs/performance.md): GEMM on the shapes of a real training step
// against the best square GEMM of the same run, attention across sequence lengths and windows, and whole
// training steps of a Zebra model and its full-attention twin. Each mode returns a report that prints as a
// table and converts to JSON. Times are wall-clock; every figure is the minimum over `repeats` runs after a
// warm-up (the machine is shared and noisy: the minimum is the best estimate of what the code can do), and
// the median is kept next to it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/model/config.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

// The model the train and gemm modes use unless given a config: about 25 M parameters (d 512, 8 layers,
// 8 heads over 4 KV heads of 64, ffn 1408, vocab 4096, tied), Zebra pattern GLLLGLLL with window 512.
ModelConfig default_bench_model();

// Minimum and median of repeated timings.
struct Timing {
  double min_s = 0.0;
  double median_s = 0.0;
  std::vector<double> runs_s;
};

// Where and under what load a report was taken: CPU model, threads, ISA paths, load average before/after.
struct MachineInfo {
  std::string cpu;
  int threads = 0;
  std::string simd;        // attention kernel in use
  std::string blas_core;   // OpenBLAS core name
  double load_before = 0.0, load_after = 0.0;  // 1-minute load average
};
// threads and simd as `options` resolve them on the calling thread.
MachineInfo machine_info(const ComputeOptions& options);
void finish_machine_info(MachineInfo& m);  // fills load_after

// ---- gemm -------------------------------------------------------------------------------------------------

struct GemmOptions {
  ModelConfig config = default_bench_model();
  std::int64_t tokens = 4096;          // B * T of the training step whose shapes are measured
  std::int64_t loss_chunk = 256;       // rows per lm-head chunk (RunOptions::loss_chunk)
  std::vector<std::int64_t> square_sizes{1024, 2048, 4096};  // the "best the machine reaches"
  int repeats = 5;
  bool bf16 = false;                   // measure the BF16 product path too
  ComputeOptions compute;              // threads (its gemm member is overridden per measured backend)
};

struct GemmRow {
  std::string name;  // e.g. "qkv fwd"
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t per_step = 0;           // how many times one training step runs this product
  std::string precision = "fp32";
  std::string backend;                 // GemmBackend (ops/matmul.hpp)
  Timing t;
  double gflops = 0.0;                 // 2 m n k / min time
};

struct GemmReport {
  MachineInfo machine;
  GemmOptions options;
  std::vector<GemmRow> squares;        // square products
  std::vector<GemmRow> shapes;         // the training step's products, per backend and precision
  double peak_gflops = 0.0;            // best square fp32 rate (either backend)
  // All step products: sum of FLOPs / sum of (per_step * time), per "backend precision" ("chunked fp32", ...).
  std::vector<std::pair<std::string, double>> step_gflops;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

GemmReport run_gemm(const GemmOptions& options);

// ---- attention --------------------------------------------------------------------------------------------

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
  ComputeOptions compute;              // threads, attention kernel
};

struct AttentionRow {
  std::int64_t seq_len = 0;
  std::int64_t window = 0;             // kGlobalWindow for the global layer
  double fwd_flops = 0.0;              // 4 * hd * H * B * visible pairs
  double fwdbwd_flops = 0.0;           // 3.5 x fwd_flops: backward = 5 products incl. the recomputed QK^T
  Timing fwd, fwdbwd;                  // fwdbwd.runs empty when not measured
  double fwd_gflops = 0.0, fwdbwd_gflops = 0.0;
  // Against the global layer of the same T, measured in the same run (0 when either is missing).
  double speedup_fwd = 0.0, speedup_fwdbwd = 0.0;
  double flop_ratio = 0.0;             // visible pairs global / local
};

struct AttentionReport {
  MachineInfo machine;
  AttentionOptions options;
  std::vector<AttentionRow> rows;
  void print(std::FILE* out) const;
  nlohmann::json to_json() const;
};

AttentionReport run_attention(const AttentionOptions& options);

// ---- train ------------------------------------------------------------------------------------------------

struct TrainBenchOptions {
  ModelConfig config = default_bench_model();
  std::vector<std::int64_t> seq_lens{1024, 4096, 16384};
  std::int64_t batch = 1;
  int steps = 2;                        // timed steps per row (after `warmup` untimed ones)
  int warmup = 1;
  // Recompute: "on", "off", or "auto" (on when the activations without it would exceed a quarter of RAM).
  std::string recompute = "auto";
  bool bf16 = false;                    // RunOptions::bf16_matmul
  bool twin = true;                     // also the full-attention twin
  double peak_gflops = 0.0;             // GEMM peak for MFU; 0 = measure (square 2048/4096) first
  // Threads. The model does not take ComputeOptions yet, so its other members must keep their defaults (a
  // non-default attention kernel is refused rather than silently ignored).
  ComputeOptions compute;
};

struct TrainRow {
  std::string model;                    // "zebra" or "full"
  std::string pattern;
  std::int64_t seq_len = 0, batch = 1;
  bool recompute = false;
  Timing step;
  double tokens_per_s = 0.0;
  double model_flops_per_token = 0.0;   // FlopCount::training()
  double mfu = 0.0;                     // model FLOP/s over the GEMM peak
  double peak_rss_bytes = 0.0;          // VmHWM of this row (reset before it)
  double planned_bytes = 0.0;           // parameters, gradients, moments and Transformer::activation_bytes
  double loss = 0.0;                    // of the last step (sanity: ~ln(vocab) on random tokens)
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

// ---- bf16: effect of BF16 matrix products on the loss -----------------------------------------------------

struct PrecisionOptions {
  ModelConfig config;                   // default: a small model (d 128, 4 layers) that learns in seconds
  std::int64_t seq_len = 256, batch = 4;
  int steps = 300;
  double lr = 3e-3;
  std::uint64_t seed = 1;
  // Folder written by `zebra prepare` (train.bin, valid.bin): train and evaluate on its first tokens instead of
  // the synthetic language; the config's vocabulary is widened to the dataset's when smaller.
  std::string data_dir;
  ComputeOptions compute;               // threads (other members: as TrainBenchOptions::compute)
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
