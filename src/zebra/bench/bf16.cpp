#include "zebra/bench/bf16.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "zebra/bench/report.hpp"
#include "zebra/bench/workload.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/optimizer.hpp"
#include "zebra/train/step.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/timer.hpp"

namespace zebra::bench {

using nlohmann::json;

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
  PrecisionReport rep;
  rep.machine = machine_info(o.compute);
  rep.options = o;
  ModelConfig c =
      o.config.d_model > 0 && o.config.n_layers > 0 && !o.config.layer_types.empty() ? o.config : small_model();
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
  RunOptions eval_options;
  eval_options.compute = o.compute;
  Transformer<float> evaluator(c, eval_options);
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
    ro.compute = o.compute;
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
      // Linear warm-up over the first 10% of steps, then constant.
      const double lr = o.lr * std::min(1.0, (s + 1.0) / std::max(1.0, 0.1 * o.steps));
      losses.push_back(train_step(model, opt, {&bv, 1}, lr).loss.mean());
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
  std::fprintf(out,
               "model: %lld parameters (%s), batch %lld x %lld tokens of %s, %d steps, "
               "lr %.1e; same init, same batches\n\n",
               static_cast<long long>(parameter_count(c)), c.pattern_string().c_str(),
               static_cast<long long>(options.batch), static_cast<long long>(options.seq_len),
               options.data_dir.empty() ? "a synthetic language" : options.data_dir.c_str(), options.steps, options.lr);
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
