#include "zebra/bench/gemm.hpp"

#include <algorithm>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "zebra/bench/report.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra::bench {

using nlohmann::json;

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
    for (GemmBackend be : {GemmBackend::kBlasThreads, GemmBackend::kChunked}) {
      co.gemm = be;
      GemmRow row;
      row.name = "square " + std::to_string(s);
      row.backend = to_string(be);
      row.m = row.n = row.k = s;
      row.t = time_square_gemm(s, o.repeats, co);
      row.gflops = square_gemm_gflops(s, row.t.min_s);
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
  std::fprintf(out, "\n%-18s %6s %6s %6s %8s %5s %-12s %10s %10s %8s\n", "product", "M", "N", "K", "per step", "prec",
               "backend", "min ms", "median ms", "GFLOP/s");
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
      a.push_back(json{{"name", r.name},
                       {"m", r.m},
                       {"n", r.n},
                       {"k", r.k},
                       {"per_step", r.per_step},
                       {"precision", r.precision},
                       {"backend", r.backend},
                       {"time", timing_json(r.t)},
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

}  // namespace zebra::bench
