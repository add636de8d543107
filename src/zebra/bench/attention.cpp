#include "zebra/bench/attention.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include "zebra/bench/report.hpp"
#include "zebra/bench/workload.hpp"
#include "zebra/ops/attention.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/timer.hpp"

namespace zebra::bench {

using nlohmann::json;

namespace {

std::string window_name(std::int64_t w) { return w == kGlobalWindow ? "global" : std::to_string(w); }

}  // namespace

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
  std::fprintf(out,
               "B %lld, heads %lld, kv heads %lld, head_dim %lld; GFLOP/s count visible pairs only "
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
  j["shape"] = json{{"batch", options.batch},
                    {"n_heads", options.n_heads},
                    {"n_kv_heads", options.n_kv_heads},
                    {"head_dim", options.head_dim}};
  j["flops_convention"] = "forward 4*head_dim per visible (query,key) pair and head; forward+backward 3.5x forward";
  json a = json::array();
  for (const AttentionRow& r : rows) {
    json e{{"seq_len", r.seq_len},        {"window", window_name(r.window)}, {"fwd_flops", r.fwd_flops},
           {"fwd", timing_json(r.fwd)},   {"fwd_gflops", r.fwd_gflops},      {"flop_ratio", r.flop_ratio},
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

}  // namespace zebra::bench
