// zebra eval tokens MODEL --tokens FILE.json [--out losses.json]: the loss of every token of given sequences,
// for comparisons with other implementations (formats: eval/token_losses.hpp). Prints the JSON when no --out.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/eval/token_losses.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace {

struct TokensArgs {
  ModelArgs m;
  std::string tokens_path, out_path;
  std::int64_t max_len = 1 << 20;
};

void run_tokens(const TokensArgs& a) {
  const LoadedModel model = load_for_eval(a.m);
  const ModelConfig& c = model.config();
  const auto sequences = read_token_sequences(a.tokens_path, c.vocab_size, a.max_len);
  // Forward only over the loaded weights: no copy, no gradients.
  Transformer<float> transformer(model.weights(), RunOptions{true, 256});
  nlohmann::json j = token_losses_json(transformer, sequences);
  j["model"] = model.path;
  j["pattern"] = c.pattern_string();
  j["window"] = c.window;
  j["positions"] = positions_string(c);
  const std::string text = j.dump() + "\n";
  if (a.out_path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    write_file_atomic(a.out_path, text);
  }
}

}  // namespace

void add_eval_tokens_command(CLI::App* eval) {
  auto a = std::make_shared<TokensArgs>();
  CLI::App* cmd = eval->add_subcommand(
      "tokens", "Loss of every token of the given sequences (JSON in, JSON out), for comparing implementations.");
  add_model_options(cmd, a->m);
  cmd->add_option("--tokens", a->tokens_path, "JSON file: [ids...], [[ids...], ...] or {\"tokens\": ...}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out_path, "write {\"losses\": [[...]], \"mean_loss\": [...]} here (default: stdout)");
  cmd->add_option("--max-len", a->max_len, "refuse sequences longer than this (default 1048576)")
      ->check(CLI::PositiveNumber);
  cmd->callback([a] { run_tokens(*a); });
}

}  // namespace zebra
