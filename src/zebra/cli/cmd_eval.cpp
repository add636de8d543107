// zebra eval: evaluations of a model, one sub-subcommand each.
//   zebra eval ppl MODEL DATA --ctx N [--score-from K] [--bos-first] [--max-tokens N] [--group-size L --window W]
// DATA is a token dataset (.bin from zebra prepare, recognised by its magic) or a corpus (text, JSONL, optionally
// zstd-compressed; each document is tokenized with the model's tokenizer behind a BOS).
// Further evaluations (passkey retrieval) add a sibling sub-subcommand in add_eval_command.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zebra/cli/commands.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/eval/perplexity.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

// Options every evaluation shares: which model, re-laid how.
struct ModelArgs {
  std::string model, tokenizer;
  std::int64_t group_size = 0, window = 0;
  int threads = 0;
};

void add_model_options(CLI::App* cmd, ModelArgs& m) {
  cmd->add_option("model", m.model, "model directory (config.json + safetensors) or llama2.c .bin checkpoint")
      ->required();
  cmd->add_option("--tokenizer", m.tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--group-size", m.group_size, "evaluate the model re-laid as Zebra with this group size L")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--window", m.window, "local-attention window for --group-size")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", m.threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
}

LoadedModel load_for_eval(const ModelArgs& m) {
  if (m.threads > 0) set_num_threads(m.threads);
  return load_any_model(m.model, pattern_from_flags(peek_model_config(m.model), m.group_size, m.window), m.tokenizer);
}

bool is_token_dataset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof kTokenDatasetMagic] = {};
  in.read(magic, sizeof magic);
  return in.gcount() == static_cast<std::streamsize>(sizeof magic) &&
         std::equal(magic, magic + sizeof magic, kTokenDatasetMagic);
}

// The token stream of DATA: a token dataset as stored (documents already carry BOS/EOS), or the corpus's
// documents tokenized, each behind a BOS. Stops reading once max_tokens are there (0 = all).
std::vector<std::int32_t> load_eval_tokens(const std::string& data, const LoadedModel& model, std::int64_t max_tokens,
                                           std::string* kind) {
  std::vector<std::int32_t> tokens;
  if (is_token_dataset(data)) {
    *kind = "token dataset";
    const TokenDataset ds = TokenDataset::open(data);
    ZEBRA_CHECK(ds.vocab_size() <= model.params.config.vocab_size, "token dataset '", data, "' has vocabulary size ",
                ds.vocab_size(), ", larger than the model's ", model.params.config.vocab_size);
    const std::int64_t n = max_tokens > 0 ? std::min(max_tokens, ds.n_tokens()) : ds.n_tokens();
    tokens.resize(static_cast<std::size_t>(n));
    ds.read(0, n, tokens.data());
    return tokens;
  }
  *kind = "text";
  const std::unique_ptr<Tokenizer> tok = load_model_tokenizer(model);
  for_each_document({data}, CorpusOptions{}, [&](std::string_view doc) {
    if (max_tokens > 0 && static_cast<std::int64_t>(tokens.size()) >= max_tokens) return;
    tokens.push_back(tok->bos_id());
    const std::vector<std::int32_t> ids = tok->encode(doc);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  });
  return tokens;
}

struct PplArgs {
  ModelArgs m;
  std::string data, json_path;
  PerplexityOptions o;
  bool quiet = false;
};

void run_ppl(const PplArgs& a) {
  const LoadedModel model = load_for_eval(a.m);
  const ModelConfig& c = model.params.config;
  Timer load_timer;
  std::string kind;
  const std::vector<std::int32_t> tokens = load_eval_tokens(a.data, model, a.o.max_tokens, &kind);
  const double tokenize_s = load_timer.seconds();
  PerplexityOptions o = a.o;
  o.bos_id = c.bos_token_id;
  if (!model.tokenizer_path.empty() && kind == "text") o.bos_id = load_model_tokenizer(model)->bos_id();

  std::fprintf(stderr, "model %s: %lld layers %s, window %lld; data %s (%s): %lld tokens (%.2f s)\n",
               model.path.c_str(), static_cast<long long>(c.n_layers), c.pattern_string().c_str(),
               static_cast<long long>(c.window), a.data.c_str(), kind.c_str(), static_cast<long long>(tokens.size()),
               tokenize_s);
  Transformer<float> transformer(model.params, RunOptions{true, 256});
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !a.quiet;
  Timer timer;
  const PerplexityResult r = evaluate_perplexity(transformer, tokens, o, [&](std::int64_t done, std::int64_t total) {
    if (!tty) return;
    const double s = timer.seconds();
    std::fprintf(stderr, "\r  window %lld / %lld  %.0f tok/s  ETA %.0f s   ", static_cast<long long>(done),
                 static_cast<long long>(total), static_cast<double>(done * o.ctx) / s,
                 s / static_cast<double>(done) * static_cast<double>(total - done));
  });
  if (tty) std::fprintf(stderr, "\n");

  std::printf("%-32s %-24s %7s %10s %4s %8s %10s %9s %9s %10s\n", "model", "data", "ctx", "score_from", "bos", "windows",
              "scored", "loss", "+-", "ppl");
  auto tail = [](const std::string& s, std::size_t n) { return s.size() <= n ? s : "..." + s.substr(s.size() - n + 3); };
  std::printf("%-32s %-24s %7lld %10lld %4s %8lld %10lld %9.4f %9.4f %10.4f\n", tail(model.path, 32).c_str(),
              tail(a.data, 24).c_str(), static_cast<long long>(o.ctx), static_cast<long long>(o.score_from),
              o.bos_first ? "yes" : "no", static_cast<long long>(r.n_windows), static_cast<long long>(r.n_scored),
              r.mean_loss(), r.mean_loss_stderr(), r.ppl());
  std::fprintf(stderr, "%.1f s, %.0f tokens/s\n", r.seconds, static_cast<double>(r.n_tokens) / r.seconds);
  if (!a.json_path.empty()) {
    nlohmann::json j = {{"eval", "ppl"},
                        {"model", model.path},
                        {"pattern", c.pattern_string()},
                        {"window", c.window},
                        {"data", a.data},
                        {"data_kind", kind},
                        {"ctx", o.ctx},
                        {"score_from", o.score_from},
                        {"bos_first", o.bos_first},
                        {"max_tokens", o.max_tokens},
                        {"windows", r.n_windows},
                        {"scored_tokens", r.n_scored},
                        {"loss_sum", r.loss_sum},
                        {"loss", r.mean_loss()},
                        {"loss_stderr", r.mean_loss_stderr()},
                        {"ppl", r.ppl()},
                        {"seconds", r.seconds}};
    write_file_atomic(a.json_path, j.dump(2) + "\n");
  }
}

void add_ppl_command(CLI::App* eval) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = eval->add_subcommand(
      "ppl", "Perplexity in non-overlapping windows of --ctx tokens (optionally scoring only the later part of each)");
  add_model_options(cmd, a->m);
  cmd->add_option("data", a->data, "token dataset (.bin from zebra prepare) or text / JSONL corpus (optionally .zst)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--ctx", a->o.ctx, "window length in tokens")->required()->check(CLI::Range(std::int64_t{2}, std::int64_t{1} << 30));
  cmd->add_option("--score-from", a->o.score_from,
                  "score only predictions made at window positions >= K (of tokens K+1..ctx-1); llama.cpp uses ctx/2")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--bos-first", a->o.bos_first, "replace the first token of each window by BOS");
  cmd->add_option("--max-tokens", a->o.max_tokens, "evaluate only the first N tokens of the data (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", a->json_path, "also write the result as JSON to this file");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  cmd->callback([a] { run_ppl(*a); });
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "Evaluate a model: ppl (perplexity); more evaluations to come");
  eval->require_subcommand(1);
  add_ppl_command(eval);
}

}  // namespace zebra
