#include "zebra/train/bench.hpp"

#include <cblas.h>
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>

#include "zebra/data/token_dataset.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/ops/attention.hpp"
#include "zebra/ops/cpu_features.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/train/optimizer.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/memory.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/timer.hpp"

namespace zebra::bench {

namespace {

using nlohmann::json;

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0.0;
  in >> one;
  return one;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(std::min(line.size(), colon + 2));
    }
  }
  return "unknown";
}

// Runs f once to warm up (unless `warmup` is false), then `repeats` timed runs.
Timing time_runs(const std::function<void()>& f, int repeats, bool warmup = true) {
  if (warmup) f();
  Timing t;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    Timer timer;
    f();
    t.runs_s.push_back(timer.seconds());
  }
  std::vector<double> sorted = t.runs_s;
  std::sort(sorted.begin(), sorted.end());
  t.min_s = sorted.front();
  const std::size_t mid = sorted.size() / 2;
  t.median_s = sorted.size() % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
  return t;
}

json timing_json(const Timing& t) { return json{{"min_s", t.min_s}, {"median_s", t.median_s}, {"runs_s", t.runs_s}}; }

json machine_json(const MachineInfo& m) {
  return json{{"cpu", m.cpu},           {"threads", m.threads},         {"simd", m.simd},
              {"blas_core", m.blas_core}, {"load_before", m.load_before}, {"load_after", m.load_after}};
}

void print_machine(std::FILE* out, const MachineInfo& m) {
  std::fprintf(out, "machine: %s, %d threads, attention path %s, OpenBLAS core %s, load %.2f -> %.2f\n",
               m.cpu.c_str(), m.threads, m.simd.c_str(), m.blas_core.c_str(), m.load_before, m.load_after);
}

void fill_random(float* x, std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(scale * rng.normal());
}

std::string window_name(std::int64_t w) { return w == kGlobalWindow ? "global" : std::to_string(w); }

// Resets the peak resident set size of this process (Linux >= 4.0), so that VmHWM afterwards is the peak
// of what follows. Returns false when the kernel refuses.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

}  // namespace

ModelConfig default_bench_model() {
  ModelConfig c;
  c.vocab_size = 4096;
  c.d_model = 512;
  c.n_layers = 8;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 64;
  c.ffn_dim = 1408;
  c.max_seq_len = 65536;
  c.tie_embeddings = true;
  c.group_size = 4;
  c.window = 512;
  c.resolve();
  return c;
}

MachineInfo machine_info(const ComputeOptions& options) {
  MachineInfo m;
  m.cpu = cpu_model();
  m.threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  m.simd = to_string(resolve_attention_kernel(options));
  const char* core = openblas_get_corename();
  m.blas_core = core != nullptr ? core : "?";
  m.load_before = load_average();
  return m;
}

void finish_machine_info(MachineInfo& m) { m.load_after = load_average(); }

// ---- gemm -------------------------------------------------------------------------------------------------

namespace {

// One product of the training step: matmul_forward (fwd), or one half of matmul_backward (dinp / dweight).
struct StepProduct {
  std::string name;
  std::int64_t rows, in, out;  // matmul shape: inp [rows, in], weight [out, in]
  int kind;                    // 0 fwd, 1 dinp, 2 dweight
  std::int64_t per_step;
};

std::vector<StepProduct> step_products(const ModelConfig& c, std::int64_t tokens, std::int64_t chunk) {
  const std::int64_t d = c.d_model, f = c.ffn_dim, qd = c.q_dim(), qkv = qd + 2 * c.kv_dim();
  const std::int64_t L = c.n_layers;
  const std::int64_t head_rows = std::min(chunk, tokens), n_chunks = (tokens + head_rows - 1) / head_rows;
  std::vector<StepProduct> out;
  const struct {
    const char* name;
    std::int64_t in, out;
  } linears[] = {{"qkv", d, qkv}, {"wo", qd, d}, {"gate|up", d, 2 * f}, {"down", f, d}};
  for (const auto& lin : linears) {
    out.push_back({std::string(lin.name) + " fwd", tokens, lin.in, lin.out, 0, L});
    out.push_back({std::string(lin.name) + " dinp", tokens, lin.in, lin.out, 1, L});
    out.push_back({std::string(lin.name) + " dweight", tokens, lin.in, lin.out, 2, L});
  }
  out.push_back({"lm_head fwd", head_rows, d, c.vocab_size, 0, n_chunks});
  out.push_back({"lm_head dinp", head_rows, d, c.vocab_size, 1, n_chunks});
  out.push_back({"lm_head dweight", head_rows, d, c.vocab_size, 2, n_chunks});
  return out;
}

}  // namespace

GemmReport run_gemm(const GemmOptions& o) {
  GemmReport rep;
  rep.machine = machine_info(o.compute);
  rep.options = o;
  ComputeOptions co = o.compute;
  constexpr GemmBackend backends[] = {GemmBackend::kBlasThreads, GemmBackend::kChunked, GemmBackend::kAuto};
  constexpr int kBackends = static_cast<int>(std::size(backends));
  for (std::int64_t s : o.square_sizes) {
    AlignedBuffer<float> a(sz(s * s)), b(sz(s * s)), c(sz(s * s));
    fill_random(a.data(), a.size(), 1);
    fill_random(b.data(), b.size(), 2);
    for (GemmBackend be : {GemmBackend::kBlasThreads, GemmBackend::kChunked}) {
      co.gemm = be;
      GemmRow row;
      row.name = "square " + std::to_string(s);
      row.backend = to_string(be);
      row.m = row.n = row.k = s;
      row.t = time_runs(
          [&] { gemm<float>(false, false, s, s, s, 1.0f, a.data(), s, b.data(), s, 0.0f, c.data(), s, co); },
          o.repeats);
      row.gflops = 2.0 * static_cast<double>(s) * s * s / row.t.min_s * 1e-9;
      rep.peak_gflops = std::max(rep.peak_gflops, row.gflops);
      rep.squares.push_back(row);
    }
  }
  for (int prec = 0; prec < (o.bf16 ? 2 : 1); ++prec) {
    const bool bf16 = prec == 1;
    double flops[kBackends] = {}, seconds[kBackends] = {};
    for (const StepProduct& p : step_products(o.config, o.tokens, o.loss_chunk)) {
      AlignedBuffer<float> inp(sz(p.rows * p.in)), w(sz(p.out * p.in)), outb(sz(p.rows * p.out));
      AlignedBuffer<float> dinp(sz(p.rows * p.in)), dw(sz(p.out * p.in));
      fill_random(inp.data(), inp.size(), 3);
      fill_random(w.data(), w.size(), 4, 0.02);
      fill_random(outb.data(), outb.size(), 5);
      ComputeOptions mo = o.compute;
      mo.bf16 = bf16;
      // Both backends on the same buffers, one after the other, so that they see the same machine state.
      for (int bi = 0; bi < kBackends; ++bi) {
        mo.gemm = backends[bi];
        std::function<void()> f;
        GemmRow row;
        row.name = p.name;
        row.precision = bf16 ? "bf16" : "fp32";
        row.backend = to_string(backends[bi]);
        row.per_step = p.per_step;
        if (p.kind == 0) {
          row.m = p.rows, row.n = p.out, row.k = p.in;
          f = [&] { matmul_forward(outb.data(), inp.data(), w.data(), p.rows, p.in, p.out, mo); };
        } else if (p.kind == 1) {
          row.m = p.rows, row.n = p.in, row.k = p.out;
          f = [&] {
            matmul_backward<float>(dinp.data(), nullptr, outb.data(), inp.data(), w.data(), p.rows, p.in, p.out, mo);
          };
        } else {
          row.m = p.out, row.n = p.in, row.k = p.rows;
          f = [&] {
            matmul_backward<float>(nullptr, dw.data(), outb.data(), inp.data(), w.data(), p.rows, p.in, p.out, mo);
          };
        }
        row.t = time_runs(f, o.repeats);
        const double fl = 2.0 * static_cast<double>(row.m) * row.n * row.k;
        row.gflops = fl / row.t.min_s * 1e-9;
        flops[bi] += fl * static_cast<double>(p.per_step);
        seconds[bi] += row.t.min_s * static_cast<double>(p.per_step);
        rep.shapes.push_back(row);
      }
    }
    for (int bi = 0; bi < kBackends; ++bi) {
      rep.step_gflops.emplace_back(std::string(to_string(backends[bi])) + (bf16 ? " bf16" : " fp32"),
                                   flops[bi] / seconds[bi] * 1e-9);
    }
  }
  finish_machine_info(rep.machine);
  return rep;
}

void GemmReport::print(std::FILE* out) const {
  print_machine(out, machine);
  std::fprintf(out, "\n%-18s %6s %6s %6s %8s %5s %-12s %10s %10s %8s\n", "product", "M", "N", "K", "per step",
               "prec", "backend", "min ms", "median ms", "GFLOP/s");
  auto line = [&](const GemmRow& r) {
    std::fprintf(out, "%-18s %6lld %6lld %6lld %8lld %5s %-12s %10.3f %10.3f %8.1f\n", r.name.c_str(),
                 static_cast<long long>(r.m), static_cast<long long>(r.n), static_cast<long long>(r.k),
                 static_cast<long long>(r.per_step), r.precision.c_str(), r.backend.c_str(), r.t.min_s * 1e3,
                 r.t.median_s * 1e3, r.gflops);
  };
  for (const GemmRow& r : squares) line(r);
  for (const GemmRow& r : shapes) line(r);
  std::fprintf(out, "\npeak (best square, fp32): %.1f GFLOP/s\n", peak_gflops);
  for (const auto& [name, g] : step_gflops) {
    std::fprintf(out, "training-step products at %lld tokens, %s: %.1f GFLOP/s = %.0f%% of peak\n",
                 static_cast<long long>(options.tokens), name.c_str(), g, 100.0 * g / peak_gflops);
  }
}

json GemmReport::to_json() const {
  json j;
  j["mode"] = "gemm";
  j["machine"] = machine_json(machine);
  j["tokens"] = options.tokens;
  j["config"] = config_to_json(options.config);
  auto rows = [](const std::vector<GemmRow>& v) {
    json a = json::array();
    for (const GemmRow& r : v) {
      a.push_back(json{{"name", r.name}, {"m", r.m}, {"n", r.n}, {"k", r.k}, {"per_step", r.per_step},
                       {"precision", r.precision}, {"backend", r.backend}, {"time", timing_json(r.t)},
                       {"gflops", r.gflops}});
    }
    return a;
  };
  j["squares"] = rows(squares);
  j["shapes"] = rows(shapes);
  j["peak_gflops"] = peak_gflops;
  json steps = json::object();
  for (const auto& [name, g] : step_gflops) steps[name] = g;
  j["step_gflops"] = steps;
  return j;
}

// ---- attention --------------------------------------------------------------------------------------------

AttentionReport run_attention(const AttentionOptions& o) {
  AttentionReport rep;
  rep.machine = machine_info(o.compute);
  rep.options = o;
  const std::int64_t H = o.n_heads, Hkv = o.n_kv_heads, hd = o.head_dim, B = o.batch;
  const std::int64_t qkv_w = (H + 2 * Hkv) * hd;
  for (std::int64_t t : o.seq_lens) {
    const std::int64_t rows = B * t;
    // The model's layout: q, k, v as column blocks of one fused [B*T, (H + 2 Hkv) hd] buffer.
    AlignedBuffer<float> qkv(sz(rows * qkv_w)), dqkv(sz(rows * qkv_w));
    AlignedBuffer<float> out(sz(rows * H * hd)), dout(sz(rows * H * hd)), lse(sz(B * H * t));
    fill_random(qkv.data(), qkv.size(), 11);
    fill_random(dout.data(), dout.size(), 12);
    const AttentionShape shape{B, t, H, Hkv, hd, qkv_w, qkv_w};
    const float* q = qkv.data();
    const float* k = q + H * hd;
    const float* v = k + Hkv * hd;
    float* dq = dqkv.data();

    std::vector<std::int64_t> windows;
    const bool global = o.max_global_seq <= 0 || t <= o.max_global_seq;
    if (global) windows.push_back(kGlobalWindow);
    for (std::int64_t w : o.windows) {
      if (w < t) windows.push_back(w);  // a window >= T is the global layer
    }
    std::vector<AttentionRow> block;
    for (std::int64_t w : windows) {
      AttentionRow row;
      row.seq_len = t;
      row.window = w;
      const double pairs = attention_visible_pairs(t, w);
      row.fwd_flops = 4.0 * static_cast<double>(hd * H * B) * pairs;
      row.fwdbwd_flops = 3.5 * row.fwd_flops;
      const AttentionMask mask{w, nullptr, nullptr};
      auto fwd = [&] { attention_forward(out.data(), lse.data(), q, k, v, shape, mask, o.compute); };
      auto fwdbwd = [&] {
        attention_forward(out.data(), lse.data(), q, k, v, shape, mask, o.compute);
        attention_backward(dq, dq + H * hd, dq + (H + Hkv) * hd, dout.data(), out.data(), lse.data(), q, k, v, shape,
                           mask, o.compute);
      };
      // Estimate one forward call first, to drop repeats on very long calls.
      Timer probe;
      fwd();
      const double one = probe.seconds();
      const bool long_calls = one * 3.5 > o.long_call_s;
      row.fwd = time_runs(fwd, long_calls ? 1 : o.repeats, false);
      row.fwd_gflops = row.fwd_flops / row.fwd.min_s * 1e-9;
      const bool do_bwd = w != kGlobalWindow || o.max_global_backward_seq <= 0 || t <= o.max_global_backward_seq;
      if (do_bwd) {
        row.fwdbwd = time_runs(fwdbwd, long_calls ? 1 : o.repeats, !long_calls);
        row.fwdbwd_gflops = row.fwdbwd_flops / row.fwdbwd.min_s * 1e-9;
      }
      block.push_back(row);
      std::fprintf(stderr, "  attention T=%lld window=%s: fwd %.3f s, fwd+bwd %.3f s\n", static_cast<long long>(t),
                   window_name(w).c_str(), row.fwd.min_s, row.fwdbwd.min_s);
    }
    if (global) {
      const AttentionRow& g = block.front();
      for (AttentionRow& r : block) {
        r.flop_ratio = g.fwd_flops / r.fwd_flops;
        r.speedup_fwd = g.fwd.min_s / r.fwd.min_s;
        if (!g.fwdbwd.runs_s.empty() && !r.fwdbwd.runs_s.empty()) r.speedup_fwdbwd = g.fwdbwd.min_s / r.fwdbwd.min_s;
      }
    }
    rep.rows.insert(rep.rows.end(), block.begin(), block.end());
  }
  finish_machine_info(rep.machine);
  return rep;
}

void AttentionReport::print(std::FILE* out) const {
  print_machine(out, machine);
  std::fprintf(out, "B %lld, heads %lld, kv heads %lld, head_dim %lld; GFLOP/s count visible pairs only "
               "(forward 4 hd per pair and head, forward+backward 3.5x that)\n\n",
               static_cast<long long>(options.batch), static_cast<long long>(options.n_heads),
               static_cast<long long>(options.n_kv_heads), static_cast<long long>(options.head_dim));
  std::fprintf(out, "%7s %7s %10s %8s %12s %8s %10s %10s %10s\n", "T", "window", "fwd s", "GFLOP/s", "fwd+bwd s",
               "GFLOP/s", "FLOP ratio", "speedup", "fwd+bwd");
  std::fprintf(out, "%7s %7s %10s %8s %12s %8s %10s %10s %10s\n", "", "", "", "", "", "", "glob/loc", "fwd", "speedup");
  for (const AttentionRow& r : rows) {
    char bwd_s[32] = "-", bwd_g[32] = "-", ratio[32] = "-", sp_f[32] = "-", sp_b[32] = "-";
    if (!r.fwdbwd.runs_s.empty()) {
      std::snprintf(bwd_s, sizeof bwd_s, "%.4f", r.fwdbwd.min_s);
      std::snprintf(bwd_g, sizeof bwd_g, "%.1f", r.fwdbwd_gflops);
    }
    if (r.flop_ratio > 0.0 && r.window != kGlobalWindow) {
      std::snprintf(ratio, sizeof ratio, "%.2f", r.flop_ratio);
      std::snprintf(sp_f, sizeof sp_f, "%.2f (%.0f%%)", r.speedup_fwd, 100.0 * r.speedup_fwd / r.flop_ratio);
      if (r.speedup_fwdbwd > 0.0) {
        std::snprintf(sp_b, sizeof sp_b, "%.2f (%.0f%%)", r.speedup_fwdbwd, 100.0 * r.speedup_fwdbwd / r.flop_ratio);
      }
    }
    std::fprintf(out, "%7lld %7s %10.4f %8.1f %12s %8s %10s %10s %10s\n", static_cast<long long>(r.seq_len),
                 window_name(r.window).c_str(), r.fwd.min_s, r.fwd_gflops, bwd_s, bwd_g, ratio, sp_f, sp_b);
  }
}

json AttentionReport::to_json() const {
  json j;
  j["mode"] = "attention";
  j["machine"] = machine_json(machine);
  j["shape"] = json{{"batch", options.batch}, {"n_heads", options.n_heads}, {"n_kv_heads", options.n_kv_heads},
                    {"head_dim", options.head_dim}};
  j["flops_convention"] = "forward 4*head_dim per visible (query,key) pair and head; forward+backward 3.5x forward";
  json a = json::array();
  for (const AttentionRow& r : rows) {
    json e{{"seq_len", r.seq_len},       {"window", window_name(r.window)}, {"fwd_flops", r.fwd_flops},
           {"fwd", timing_json(r.fwd)},  {"fwd_gflops", r.fwd_gflops},      {"flop_ratio", r.flop_ratio},
           {"speedup_fwd", r.speedup_fwd}};
    if (!r.fwdbwd.runs_s.empty()) {
      e["fwdbwd_flops"] = r.fwdbwd_flops;
      e["fwdbwd"] = timing_json(r.fwdbwd);
      e["fwdbwd_gflops"] = r.fwdbwd_gflops;
      e["speedup_fwdbwd"] = r.speedup_fwdbwd;
    }
    a.push_back(e);
  }
  j["rows"] = a;
  return j;
}

// ---- train ------------------------------------------------------------------------------------------------

namespace {

double measure_peak(int repeats) {
  double best = 0.0;
  for (std::int64_t s : {2048, 4096}) {
    AlignedBuffer<float> a(sz(s * s)), b(sz(s * s)), c(sz(s * s));
    fill_random(a.data(), a.size(), 1);
    fill_random(b.data(), b.size(), 2);
    const Timing t = time_runs(
        [&] { gemm<float>(false, false, s, s, s, 1.0f, a.data(), s, b.data(), s, 0.0f, c.data(), s); }, repeats);
    best = std::max(best, 2.0 * static_cast<double>(s) * s * s / t.min_s * 1e-9);
  }
  return best;
}

TrainRow train_row(const ModelConfig& c, const std::string& name, std::int64_t t, const TrainBenchOptions& o) {
  TrainRow row;
  row.model = name;
  row.pattern = c.pattern_string();
  row.seq_len = t;
  row.batch = o.batch;
  const std::size_t no_recompute = Transformer<float>::activation_bytes(c, o.batch, t, false);
  if (o.recompute == "on") {
    row.recompute = true;
  } else if (o.recompute == "off") {
    row.recompute = false;
  } else {
    row.recompute = static_cast<double>(no_recompute) > 0.25 * static_cast<double>(available_memory_bytes());
  }
  const std::int64_t n_params = parameter_count(c);
  row.planned_bytes =
      4.0 * 4.0 * static_cast<double>(n_params) +
      static_cast<double>(Transformer<float>::activation_bytes(c, o.batch, t, row.recompute));
  reset_peak_rss();
  {
    RunOptions ro;
    ro.recompute = row.recompute;
    ro.bf16_matmul = o.bf16;
    Transformer<float> model(c, ro);
    init_parameters(model.params(), 1);
    OptimizerOptions oo;
    Optimizer opt(model.params().layout, oo);
    std::vector<std::int32_t> tokens(sz(o.batch * t)), targets(sz(o.batch * t));
    Rng rng(7);
    for (auto& x : tokens) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(c.vocab_size)));
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      targets[i] = (i + 1) % sz(t) == 0 ? -1 : tokens[i + 1];
    }
    const BatchView batch{o.batch, t, tokens.data(), targets.data(), nullptr};
    auto step = [&] {
      model.zero_grads();
      row.loss = model.forward_backward(batch).mean();
      opt.step(model.params(), model.grads(), 1e-4);
    };
    for (int i = 0; i < o.warmup; ++i) step();
    row.step = time_runs(step, o.steps, false);
  }
  row.peak_rss_bytes = static_cast<double>(peak_rss_bytes());
  row.tokens_per_s = static_cast<double>(o.batch * t) / row.step.min_s;
  row.model_flops_per_token = forward_flops(c, t).training();
  return row;
}

}  // namespace

namespace {

// The modes that run the model: until it takes ComputeOptions, only their thread count can be honoured.
void check_model_compute(const ComputeOptions& o, const char* mode) {
  ZEBRA_CHECK(o.attention == AttentionKernel::kDefault && o.simd == default_simd_path(), "bench ", mode,
              ": choosing the attention kernel or SIMD path needs the model to take ComputeOptions (not yet)");
}

}  // namespace

TrainReport run_train(const TrainBenchOptions& o) {
  check_model_compute(o.compute, "train");
  const ThreadScope threads(o.compute);
  TrainReport rep;
  rep.machine = machine_info(o.compute);
  rep.options = o;
  ModelConfig zebra = o.config;
  zebra.resolve();
  rep.parameters = parameter_count(zebra);
  // Large buffers always come from mmap and go back to the system when freed, so that the peak RSS of a row
  // is its own and not what an earlier row left in the heap.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  rep.peak_gflops = o.peak_gflops > 0.0 ? o.peak_gflops : measure_peak(3);
  for (std::int64_t t : o.seq_lens) {
    for (int m = 0; m < (o.twin ? 2 : 1); ++m) {
      const ModelConfig c = m == 0 ? zebra : zebra.full_attention_twin();
      TrainRow row = train_row(c, m == 0 ? "zebra" : "full", t, o);
      row.mfu = row.tokens_per_s * row.model_flops_per_token / (rep.peak_gflops * 1e9);
      std::fprintf(stderr, "  train %s T=%lld: %.3f s/step, %.0f tokens/s, MFU %.1f%%, peak RSS %.0f MiB\n",
                   row.model.c_str(), static_cast<long long>(t), row.step.min_s, row.tokens_per_s, 100.0 * row.mfu,
                   row.peak_rss_bytes / (1024.0 * 1024.0));
      rep.rows.push_back(row);
    }
  }
  finish_machine_info(rep.machine);
  return rep;
}

void TrainReport::print(std::FILE* out) const {
  print_machine(out, machine);
  std::fprintf(out, "model: %lld parameters, batch %lld, %s; GEMM peak %.1f GFLOP/s (best square sgemm, same run)\n",
               static_cast<long long>(parameters), static_cast<long long>(options.batch),
               options.bf16 ? "BF16 matrix products" : "fp32", peak_gflops);
  std::fprintf(out, "MFU = tokens/s x training FLOPs/token (3 x forward, model/flops.hpp) / GEMM peak\n\n");
  std::fprintf(out, "%-6s %-10s %7s %5s %10s %10s %9s %6s %11s %11s %7s\n", "model", "pattern", "T", "recmp",
               "step s", "median s", "tokens/s", "MFU", "peak RSS", "planned", "loss");
  for (const TrainRow& r : rows) {
    std::fprintf(out, "%-6s %-10s %7lld %5s %10.4g %10.4g %9.0f %5.1f%% %8.0f MiB %7.0f MiB %7.3f\n",
                 r.model.c_str(), r.pattern.c_str(), static_cast<long long>(r.seq_len), r.recompute ? "on" : "off",
                 r.step.min_s, r.step.median_s, r.tokens_per_s, 100.0 * r.mfu, r.peak_rss_bytes / 1048576.0,
                 r.planned_bytes / 1048576.0, r.loss);
  }
  // Zebra against its twin at each T, from the same run.
  for (const TrainRow& z : rows) {
    if (z.model != "zebra") continue;
    for (const TrainRow& f : rows) {
      if (f.model == "full" && f.seq_len == z.seq_len) {
        std::fprintf(out, "T %6lld: zebra / full tokens/s = %.2f (training FLOP ratio full / zebra = %.2f)\n",
                     static_cast<long long>(z.seq_len), z.tokens_per_s / f.tokens_per_s,
                     f.model_flops_per_token / z.model_flops_per_token);
      }
    }
  }
}

json TrainReport::to_json() const {
  json j;
  j["mode"] = "train";
  j["machine"] = machine_json(machine);
  j["config"] = config_to_json(options.config);
  j["parameters"] = parameters;
  j["batch"] = options.batch;
  j["bf16_matmul"] = options.bf16;
  j["peak_gflops"] = peak_gflops;
  json a = json::array();
  for (const TrainRow& r : rows) {
    a.push_back(json{{"model", r.model},
                     {"pattern", r.pattern},
                     {"seq_len", r.seq_len},
                     {"recompute", r.recompute},
                     {"step", timing_json(r.step)},
                     {"tokens_per_s", r.tokens_per_s},
                     {"model_flops_per_token", r.model_flops_per_token},
                     {"mfu", r.mfu},
                     {"peak_rss_bytes", r.peak_rss_bytes},
                     {"planned_bytes", r.planned_bytes},
                     {"loss", r.loss}});
  }
  j["rows"] = a;
  return j;
}

// ---- bf16 precision -----------------------------------------------------------------------------------------

namespace {

ModelConfig small_model() {
  ModelConfig c;
  c.vocab_size = 256;
  c.d_model = 128;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.ffn_dim = 352;
  c.max_seq_len = 4096;
  c.group_size = 2;
  c.window = 64;
  c.resolve();
  return c;
}

// A synthetic language with short- and long-range structure, so both the MLPs and attention have something to
// learn: each token either copies the token `lag` positions back (probability 0.4, lag 32) or follows a fixed
// sparse bigram table (4 successors per token with probabilities 0.5, 0.25, 0.15, 0.1).
std::vector<std::int32_t> synthetic_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  Rng table_rng(1234);  // the language is fixed; only the sample depends on the seed
  std::vector<std::int32_t> succ(sz(vocab * 4));
  for (auto& s : succ) s = static_cast<std::int32_t>(table_rng.below(static_cast<std::uint64_t>(vocab)));
  Rng rng(seed);
  std::vector<std::int32_t> out(sz(n));
  const std::int64_t lag = 32;
  for (std::int64_t i = 0; i < n; ++i) {
    if (i == 0) {
      out[0] = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab)));
      continue;
    }
    if (i >= lag && rng.uniform() < 0.4) {
      out[sz(i)] = out[sz(i - lag)];
      continue;
    }
    const double u = rng.uniform();
    const int pick = u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : 3;
    out[sz(i)] = succ[sz(out[sz(i - 1)] * 4 + pick)];
  }
  return out;
}

}  // namespace

PrecisionReport run_precision(const PrecisionOptions& o) {
  check_model_compute(o.compute, "bf16");
  const ThreadScope threads(o.compute);
  PrecisionReport rep;
  rep.machine = machine_info(o.compute);
  rep.options = o;
  ModelConfig c = o.config.d_model > 0 && o.config.n_layers > 0 && !o.config.layer_types.empty() ? o.config
                                                                                                   : small_model();
  const std::int64_t per_batch = o.batch * o.seq_len;
  std::vector<std::int32_t> train, held;
  if (o.data_dir.empty()) {
    train = synthetic_tokens(per_batch * o.steps + 1, c.vocab_size, o.seed);
    held = synthetic_tokens(per_batch * 4 + 1, c.vocab_size, o.seed + 99);
  } else {
    // Consecutive windows from the start of each split: both precisions see exactly the same tokens.
    auto first_tokens = [](const std::string& path, std::int64_t n) {
      const TokenDataset ds = TokenDataset::open(path);
      ZEBRA_CHECK(ds.n_tokens() >= n, "bench bf16: ", path, " has ", ds.n_tokens(), " tokens; ", n,
                  " are needed (fewer --steps or a smaller --batch / --seq-len)");
      std::vector<std::int32_t> t(sz(n));
      ds.read(0, n, t.data());
      return std::pair{std::move(t), ds.vocab_size()};
    };
    std::int64_t vocab = 0;
    std::tie(train, vocab) = first_tokens(o.data_dir + "/train.bin", per_batch * o.steps + 1);
    held = first_tokens(o.data_dir + "/valid.bin", per_batch * 4 + 1).first;
    if (c.vocab_size < vocab) {
      c.vocab_size = vocab;
      c.resolve();
    }
  }
  rep.options.config = c;
  ParameterSet<float> init(c);
  init_parameters(init, o.seed);
  Transformer<float> evaluator(c);
  auto eval = [&](const ParameterSet<float>& p) {
    evaluator.params().data = p.data;
    double sum = 0.0;
    std::int64_t count = 0;
    for (int b = 0; b < 4; ++b) {
      const std::int32_t* base = held.data() + b * per_batch;
      const BatchView bv{o.batch, o.seq_len, base, base + 1, nullptr};
      const LossResult r = evaluator.forward_loss(bv);
      sum += r.loss_sum;
      count += r.n_valid;
    }
    return sum / static_cast<double>(count);
  };
  for (int prec = 0; prec < 2; ++prec) {
    RunOptions ro;
    ro.bf16_matmul = prec == 1;
    Transformer<float> model(init, ro);
    OptimizerOptions oo;
    oo.adamw.lr = o.lr;
    Optimizer opt(model.params().layout, oo);
    std::vector<double>& losses = prec == 0 ? rep.loss_fp32 : rep.loss_bf16;
    Timer timer;
    for (int s = 0; s < o.steps; ++s) {
      const std::int32_t* base = train.data() + s * per_batch;
      const BatchView bv{o.batch, o.seq_len, base, base + 1, nullptr};
      model.zero_grads();
      losses.push_back(model.forward_backward(bv).mean());
      // Linear warm-up over the first 10% of steps, then constant.
      const double lr = o.lr * std::min(1.0, (s + 1.0) / std::max(1.0, 0.1 * o.steps));
      opt.step(model.params(), model.grads(), lr);
    }
    (prec == 0 ? rep.seconds_fp32 : rep.seconds_bf16) = timer.seconds();
    (prec == 0 ? rep.eval_fp32 : rep.eval_bf16) = eval(model.params());
  }
  finish_machine_info(rep.machine);
  return rep;
}

void PrecisionReport::print(std::FILE* out) const {
  print_machine(out, machine);
  const ModelConfig& c = options.config;
  std::fprintf(out, "model: %lld parameters (%s), batch %lld x %lld tokens of %s, %d steps, "
               "lr %.1e; same init, same batches\n\n",
               static_cast<long long>(parameter_count(c)), c.pattern_string().c_str(),
               static_cast<long long>(options.batch), static_cast<long long>(options.seq_len),
               options.data_dir.empty() ? "a synthetic language" : options.data_dir.c_str(), options.steps,
               options.lr);
  std::fprintf(out, "%8s %12s %12s %12s\n", "step", "loss fp32", "loss bf16", "difference");
  const std::size_t n = loss_fp32.size();
  for (std::size_t s = 0; s < n; ++s) {
    if (s == 0 || (s + 1) % std::max<std::size_t>(1, n / 10) == 0 || s + 1 == n) {
      std::fprintf(out, "%8zu %12.4f %12.4f %+12.4f\n", s + 1, loss_fp32[s], loss_bf16[s], loss_bf16[s] - loss_fp32[s]);
    }
  }
  // Mean over the last 10% of steps smooths the batch-to-batch noise.
  const std::size_t tail = std::max<std::size_t>(1, n / 10);
  double a = 0.0, b = 0.0;
  for (std::size_t s = n - tail; s < n; ++s) {
    a += loss_fp32[s];
    b += loss_bf16[s];
  }
  std::fprintf(out, "\nmean training loss over the last %zu steps: fp32 %.4f, bf16 %.4f (difference %+.4f)\n", tail,
               a / tail, b / tail, (b - a) / tail);
  std::fprintf(out, "held-out loss (evaluated in fp32): fp32-trained %.4f, bf16-trained %.4f (difference %+.4f)\n",
               eval_fp32, eval_bf16, eval_bf16 - eval_fp32);
  std::fprintf(out, "time: fp32 %.1f s, bf16 %.1f s\n", seconds_fp32, seconds_bf16);
}

json PrecisionReport::to_json() const {
  json j;
  j["mode"] = "bf16";
  j["machine"] = machine_json(machine);
  j["config"] = config_to_json(options.config);
  j["seq_len"] = options.seq_len;
  j["batch"] = options.batch;
  j["steps"] = options.steps;
  j["lr"] = options.lr;
  j["data"] = options.data_dir.empty() ? "synthetic" : options.data_dir;
  j["loss_fp32"] = loss_fp32;
  j["loss_bf16"] = loss_bf16;
  j["eval_fp32"] = eval_fp32;
  j["eval_bf16"] = eval_bf16;
  j["seconds_fp32"] = seconds_fp32;
  j["seconds_bf16"] = seconds_bf16;
  return j;
}

}  // namespace zebra::bench
