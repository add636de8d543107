#include "zebra/bench/train.hpp"

#include <malloc.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "zebra/bench/report.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/optimizer.hpp"
#include "zebra/train/step.hpp"
#include "zebra/util/memory.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::bench {

using nlohmann::json;

namespace {

double measure_peak(int repeats) {
  double best = 0.0;
  for (std::int64_t s : {2048, 4096}) best = std::max(best, square_gemm_gflops(s, time_square_gemm(s, repeats).min_s));
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
  row.planned_bytes = 4.0 * 4.0 * static_cast<double>(n_params) +
                      static_cast<double>(Transformer<float>::activation_bytes(c, o.batch, t, row.recompute));
  reset_peak_rss();
  {
    RunOptions ro;
    ro.compute = o.compute;
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
    auto step = [&] { row.loss = train_step(model, opt, {&batch, 1}, 1e-4).loss.mean(); };
    for (int i = 0; i < o.warmup; ++i) step();
    row.step = time_runs(step, o.steps, false);
  }
  row.peak_rss_bytes = static_cast<double>(peak_rss_bytes());
  row.tokens_per_s = static_cast<double>(o.batch * t) / row.step.min_s;
  row.model_flops_per_token = forward_flops(c, t).training();
  return row;
}

}  // namespace

TrainReport run_train(const TrainBenchOptions& o) {
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
  std::fprintf(out, "%-6s %-10s %7s %5s %10s %10s %9s %6s %11s %11s %7s\n", "model", "pattern", "T", "recmp", "step s",
               "median s", "tokens/s", "MFU", "peak RSS", "planned", "loss");
  for (const TrainRow& r : rows) {
    std::fprintf(out, "%-6s %-10s %7lld %5s %10.4g %10.4g %9.0f %5.1f%% %8.0f MiB %7.0f MiB %7.3f\n", r.model.c_str(),
                 r.pattern.c_str(), static_cast<long long>(r.seq_len), r.recompute ? "on" : "off", r.step.min_s,
                 r.step.median_s, r.tokens_per_s, 100.0 * r.mfu, r.peak_rss_bytes / 1048576.0,
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

}  // namespace zebra::bench
