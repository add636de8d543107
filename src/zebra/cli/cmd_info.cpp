// zebra info CONFIG [--seq-len T] [--context C]: what a config costs, against its full-attention twin.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/util/format.hpp"

#include "zebra/model/config.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

struct InfoArgs {
  std::string config_path;
  std::int64_t seq_len = 4096;
  std::int64_t context = 0;  // 0: same as seq_len
  std::int64_t kv_bytes = 4;
  std::string rope_json;  // also write the RoPE frequencies and table of a pass of seq_len tokens here
  bool step = false;      // also initialise the model and run one forward/backward step
  std::uint64_t seed = 1;
  AdjustArgs adjust;  // re-lay / re-position the model
};

// Initialises the model and runs one forward/backward pass on random tokens: a freshly initialised
// model predicts nearly uniformly, so the loss must come out close to ln(vocab).
void run_one_step(const ModelConfig& c, const InfoArgs& args) {
  const std::int64_t t = std::min(args.seq_len, c.max_seq_len);
  Transformer<float> model(c, RunOptions{true, 256});
  init_parameters(model.params(), args.seed);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(t)), targets(static_cast<std::size_t>(t));
  Rng rng(args.seed + 1);
  for (auto& x : tokens) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(c.vocab_size)));
  for (std::size_t i = 0; i < tokens.size(); ++i) targets[i] = i + 1 < tokens.size() ? tokens[i + 1] : -1;
  Timer timer;
  model.zero_grads();
  LossResult r = model.forward_backward(BatchView{1, t, tokens.data(), targets.data(), nullptr});
  const double seconds = timer.seconds();
  double norm2 = 0.0;
  for (float g : model.grads()) norm2 += static_cast<double>(g) * g;
  std::printf("\none forward/backward step on %lld random tokens (seed %llu, recompute on):\n",
              static_cast<long long>(t), static_cast<unsigned long long>(args.seed));
  std::printf("  loss %.4f nats/token (ln(vocab) = %.4f), gradient norm %.4e, %.3f s\n", r.mean(),
              std::log(static_cast<double>(c.vocab_size)), std::sqrt(norm2), seconds);
}

void run_info(const InfoArgs& args) {
  // config.json or a directory holding one (no weights needed), else a model file (GGUF, llama2.c); optionally
  // re-laid.
  const bool config_only = args.config_path.ends_with(".json") || std::filesystem::is_directory(args.config_path);
  ModelConfig c = config_only ? load_config(args.config_path) : peek_model_config(args.config_path);
  c.resolve();
  c = apply_adjustment(c, adjustment_of(args.adjust));
  c.resolve();
  const ModelConfig full = c.full_attention_twin();
  const std::int64_t t = args.seq_len, ctx = args.context > 0 ? args.context : args.seq_len;
  const FlopCount z = forward_flops(c, t), f = forward_flops(full, t);

  std::printf("config            %s\n", args.config_path.c_str());
  std::printf("parameters        %lld\n", static_cast<long long>(parameter_count(c)));
  std::printf("layers            %lld (d_model %lld, heads %lld, kv heads %lld, head_dim %lld, ffn %lld, vocab %lld)\n",
              static_cast<long long>(c.n_layers), static_cast<long long>(c.d_model), static_cast<long long>(c.n_heads),
              static_cast<long long>(c.n_kv_heads), static_cast<long long>(c.head_dim),
              static_cast<long long>(c.ffn_dim), static_cast<long long>(c.vocab_size));
  std::printf("pattern           %s (G = global, L = local window %lld; %lld global of %lld)\n",
              c.pattern_string().c_str(), static_cast<long long>(c.window),
              static_cast<long long>(c.num_global_layers()), static_cast<long long>(c.n_layers));
  std::printf("positions         %s\n", positions_string(c).c_str());
  std::printf("\ntraining FLOPs per token at T = %lld (3 x forward; attention counts visible pairs only)\n",
              static_cast<long long>(t));
  std::printf("  %-14s %16s %16s %16s %16s\n", "", "projections", "attention", "lm head", "total");
  auto row = [](const char* name, const FlopCount& fc) {
    std::printf("  %-14s %16.6e %16.6e %16.6e %16.6e\n", name, 3 * fc.projections, 3 * fc.attention, 3 * fc.lm_head,
                fc.training());
  };
  row("zebra", z);
  row("full attention", f);
  std::printf("  ratio zebra/full: total %.4f, attention %.4f\n", z.training() / f.training(),
              z.attention / f.attention);
  const double kv_z = static_cast<double>(kv_cache_bytes(c, ctx, args.kv_bytes));
  const double kv_f = static_cast<double>(kv_cache_bytes(full, ctx, args.kv_bytes));
  std::printf("\nKV cache at context C = %lld (%lld bytes per value)\n", static_cast<long long>(ctx),
              static_cast<long long>(args.kv_bytes));
  std::printf("  zebra           %.0f bytes (%s)\n", kv_z, human_bytes(kv_z).c_str());
  std::printf("  full attention  %.0f bytes (%s)\n", kv_f, human_bytes(kv_f).c_str());
  std::printf("  ratio zebra/full: %.4f\n", kv_z / kv_f);
  std::printf(
      "\ntraining memory for one sequence of T (float32): weights+grads+adam %s, activations %s (%s with "
      "recompute)\n",
      human_bytes(16.0 * static_cast<double>(parameter_count(c))).c_str(),
      human_bytes(static_cast<double>(Transformer<float>::activation_bytes(c, 1, t, false))).c_str(),
      human_bytes(static_cast<double>(Transformer<float>::activation_bytes(c, 1, t, true))).c_str());
  if (!args.rope_json.empty()) write_file_atomic(args.rope_json, rope_json(c, t).dump() + "\n");
  if (args.step) run_one_step(c, args);
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Parameter count, layer pattern, FLOPs and KV-cache size of a config");
  cmd->add_option("config", args->config_path, "config.json, a model directory, a GGUF or a llama2.c file")->required();
  add_adjust_options(cmd, args->adjust, "describe the model");
  cmd->add_option("--seq-len,-T", args->seq_len, "training sequence length for the FLOP count")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--context,-C", args->context, "context length for the KV-cache size (default: seq-len)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kv-bytes", args->kv_bytes, "bytes per cached value (4 = float32, 2 = 16-bit)")
      ->check(CLI::IsMember({2, 4}));
  cmd->add_option("--rope-json", args->rope_json,
                  "also write RoPE's inv_freq, attention factor and cos/sin table for a pass of --seq-len tokens "
                  "(JSON, for comparisons)");
  cmd->add_flag("--step", args->step, "also initialise the model and run one forward/backward step on random tokens");
  cmd->add_option("--seed", args->seed, "initialisation seed for --step");
  cmd->callback([args] { run_info(*args); });
}

}  // namespace zebra
