// zebra bench gemm|attention|train|bf16|bandwidth|quant: the measurements of docs/performance.md (src/zebra/bench/, one
// file per mode). Each mode prints a table and, with --json FILE, writes everything it measured as JSON. A new mode is
// one more entry in kModes below.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zebra/bench/attention.hpp"
#include "zebra/bench/bandwidth.hpp"
#include "zebra/bench/bf16.hpp"
#include "zebra/bench/gemm.hpp"
#include "zebra/bench/quant.hpp"
#include "zebra/bench/train.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/attention.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

struct BenchArgs {
  std::string json_path, config_path, kernel;
  int threads = 0;
  int repeats = 0;  // 0: the mode's default
  bool quick = false;
  bench::GemmOptions gemm;
  bench::AttentionOptions attention;
  bench::TrainBenchOptions train;
  bench::PrecisionOptions precision;
  bench::BandwidthOptions bandwidth;
  bench::QuantOptions quant;
};

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream out(path);
  ZEBRA_CHECK(static_cast<bool>(out), "bench: cannot write ", path);
  out << j.dump(2) << '\n';
  ZEBRA_CHECK(static_cast<bool>(out), "bench: writing ", path, " failed");
  std::printf("\nwrote %s\n", path.c_str());
}

// --threads and --kernel as the options every mode passes to the ops.
void prepare(BenchArgs& a) {
  ComputeOptions co;
  ZEBRA_CHECK(a.threads >= 0, "bench: --threads must be >= 0, got ", a.threads);
  co.threads = a.threads;
  if (!a.kernel.empty()) {
    const AttentionKernel k = a.kernel == "scalar"           ? AttentionKernel::kScalar
                              : a.kernel == "avx2"           ? AttentionKernel::kAvx2
                              : a.kernel == "avx512"         ? AttentionKernel::kAvx512
                              : a.kernel == "avx512-on-avx2" ? AttentionKernel::kAvx512OnAvx2
                                                             : AttentionKernel::kDefault;
    ZEBRA_CHECK(k != AttentionKernel::kDefault || a.kernel == "default",
                "bench: --kernel must be default, scalar, avx2, avx512 or avx512-on-avx2; got ", a.kernel);
    co.attention = k;
    resolve_attention_kernel(co);  // refuses a kernel this CPU cannot run, before any measurement
  }
  a.gemm.compute = a.attention.compute = a.train.compute = a.precision.compute = a.bandwidth.compute = a.quant.compute =
      co;
}

ModelConfig config_or_default(const std::string& path) {
  if (path.empty()) return bench::default_bench_model();
  ModelConfig c = load_config(path);
  c.resolve();
  return c;
}

void add_common(CLI::App* cmd, BenchArgs& a) {
  cmd->add_option("--json", a.json_path, "also write the results as JSON to FILE");
  cmd->add_option("--threads", a.threads, "OpenMP threads (default: all cores)");
  cmd->add_option("--repeats", a.repeats, "timed runs per measurement after a warm-up (minimum reported)");
}

// Prints a mode's report and writes its JSON when asked.
template <typename Report>
void finish(const BenchArgs& a, const Report& r) {
  r.print(stdout);
  write_json(a.json_path, r.to_json());
}

using Args = std::shared_ptr<BenchArgs>;

void add_gemm(CLI::App* gemm, const Args& a) {
  gemm->add_option("--config", a->config_path, "model config (default: the 25M-parameter bench model)");
  gemm->add_option("--tokens", a->gemm.tokens, "tokens per step (batch x seq_len)")->capture_default_str();
  gemm->add_option("--sizes", a->gemm.square_sizes, "square sizes for the peak")->delimiter(',')->capture_default_str();
  gemm->add_flag("--bf16", a->gemm.bf16, "also measure the BF16 product path");
  gemm->callback([a] {
    prepare(*a);
    a->gemm.config = config_or_default(a->config_path);
    if (a->repeats > 0) a->gemm.repeats = a->repeats;
    finish(*a, bench::run_gemm(a->gemm));
  });
}

void add_attention(CLI::App* att, const Args& a) {
  att->add_option("--seq-lens", a->attention.seq_lens, "sequence lengths")->delimiter(',')->capture_default_str();
  att->add_option("--windows", a->attention.windows, "local windows")->delimiter(',')->capture_default_str();
  att->add_option("--batch", a->attention.batch)->capture_default_str();
  att->add_option("--heads", a->attention.n_heads)->capture_default_str();
  att->add_option("--kv-heads", a->attention.n_kv_heads)->capture_default_str();
  att->add_option("--head-dim", a->attention.head_dim)->capture_default_str();
  att->add_option("--max-global-seq", a->attention.max_global_seq, "skip global layers beyond this T (0: none)");
  att->add_option("--max-global-backward-seq", a->attention.max_global_backward_seq,
                  "global layers beyond this T: forward only (0: no limit)");
  att->add_option("--kernel", a->kernel, "default, scalar, avx2, avx512 or avx512-on-avx2");
  att->add_flag("--quick", a->quick, "global layers beyond T = 16k forward only, one timed run for calls over 2 s");
  att->callback([a] {
    prepare(*a);
    if (a->repeats > 0) a->attention.repeats = a->repeats;
    if (a->quick) {
      if (a->attention.max_global_backward_seq == 0) a->attention.max_global_backward_seq = 16384;
      a->attention.long_call_s = 2.0;
    }
    finish(*a, bench::run_attention(a->attention));
  });
}

void add_train(CLI::App* train, const Args& a) {
  train->add_option("--config", a->config_path, "model config (default: the 25M-parameter bench model)");
  train->add_option("--seq-lens", a->train.seq_lens, "sequence lengths")->delimiter(',')->capture_default_str();
  train->add_option("--batch", a->train.batch)->capture_default_str();
  train->add_option("--steps", a->train.steps, "timed steps per row")->capture_default_str();
  train->add_option("--warmup", a->train.warmup, "untimed steps before them")->capture_default_str();
  train->add_option("--recompute", a->train.recompute, "on, off or auto (on when activations > RAM/4)")
      ->check(CLI::IsMember({"on", "off", "auto"}))
      ->capture_default_str();
  train->add_option("--peak", a->train.peak_gflops, "GEMM peak GFLOP/s for MFU (default: measured first)");
  train->add_flag("--bf16", a->train.bf16, "BF16 matrix products (fp32 accumulation)");
  train->add_flag(
      "--no-twin", [a](std::int64_t) { a->train.twin = false; }, "skip the full-attention twin");
  train->add_option("--kernel", a->kernel, "attention kernel: default, scalar, avx2, avx512 or avx512-on-avx2");
  train->callback([a] {
    prepare(*a);
    a->train.config = config_or_default(a->config_path);
    finish(*a, bench::run_train(a->train));
  });
}

void add_bf16(CLI::App* bf16, const Args& a) {
  bf16->add_option("--config", a->config_path, "model config (default: a small 4-layer model)");
  bf16->add_option("--steps", a->precision.steps)->capture_default_str();
  bf16->add_option("--seq-len", a->precision.seq_len)->capture_default_str();
  bf16->add_option("--batch", a->precision.batch)->capture_default_str();
  bf16->add_option("--lr", a->precision.lr)->capture_default_str();
  bf16->add_option("--seed", a->precision.seed)->capture_default_str();
  bf16->add_option("--data", a->precision.data_dir,
                   "folder from zebra prepare: train and evaluate on its text (default: a synthetic language)")
      ->check(CLI::ExistingDirectory);
  bf16->callback([a] {
    prepare(*a);
    if (!a->config_path.empty()) a->precision.config = config_or_default(a->config_path);
    finish(*a, bench::run_precision(a->precision));
  });
}

void add_bandwidth(CLI::App* bw, const Args& a) {
  bw->add_option("--bytes", a->bandwidth.bytes, "bytes per buffer (copy uses two)")->capture_default_str();
  bw->callback([a] {
    prepare(*a);
    if (a->repeats > 0) a->bandwidth.repeats = a->repeats;
    finish(*a, bench::run_bandwidth(a->bandwidth));
  });
}

void add_quant(CLI::App* q, const Args& a) {
  q->add_option("--rows", a->quant.rows, "weight rows (outputs) of each matrix")->capture_default_str();
  q->add_option("--cols", a->quant.cols, "weight columns (inputs), a multiple of 32")->capture_default_str();
  q->add_option("--bytes", a->quant.total_bytes, "fp32 bytes' worth of matrices per run")->capture_default_str();
  q->callback([a] {
    prepare(*a);
    if (a->repeats > 0) a->quant.repeats = a->repeats;
    finish(*a, bench::run_quant(a->quant));
  });
}

// The modes of `zebra bench`: each adds its own options (after --json, --threads, --repeats) and callback.
struct BenchMode {
  const char* name;
  const char* help;
  void (*add)(CLI::App* cmd, const Args& a);
};

constexpr BenchMode kModes[] = {
    {"gemm", "GEMM GFLOP/s on a training step's shapes against square sgemm", add_gemm},
    {"attention", "attention forward and forward+backward across T and window", add_attention},
    {"train", "training steps of a Zebra model and its full-attention twin", add_train},
    {"bf16", "effect of BF16 matrix products on the training loss", add_bf16},
    {"bandwidth", "memory read / write / copy bandwidth (the bound of a decode step)", add_bandwidth},
    {"quant", "matrix-vector products on quantized and 16-bit weights against the read bandwidth", add_quant},
};

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* bench =
      app.add_subcommand("bench", "measure GEMM, attention, training speed and memory bandwidth (docs/performance.md)");
  bench->require_subcommand(1);
  for (const BenchMode& mode : kModes) {
    CLI::App* cmd = bench->add_subcommand(mode.name, mode.help);
    add_common(cmd, *a);
    mode.add(cmd, a);
  }
}

}  // namespace zebra
