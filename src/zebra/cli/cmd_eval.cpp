// zebra eval: evaluations of a model, one sub-subcommand each.
//   zebra eval ppl MODEL DATA --ctx N[,N...] [--stride S | --score-from K] [--bos-first] [--max-tokens N]
//                  [--position-buckets N] [--position-scale geometric|linear] [--json F] [--csv F] [--plot F.png]
//   zebra eval passkey MODEL ... (cmd_eval_passkey.cpp)
//   zebra eval tokens MODEL --tokens F.json [--out F.json] (cmd_eval_tokens.cpp)
// DATA is a token dataset (.bin from zebra prepare, recognised by its magic) or a corpus (text, JSONL, optionally
// zstd-compressed; each document is tokenized with the model's tokenizer behind a BOS). Every context length is
// evaluated on the same token stream. The schemes and output formats: docs/evaluation.md.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/eval/perplexity.hpp"
#include "zebra/eval/position_curve.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/gnuplot.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

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
    ZEBRA_CHECK(ds.vocab_size() <= model.config().vocab_size, "token dataset '", data, "' has vocabulary size ",
                ds.vocab_size(), ", larger than the model's ", model.config().vocab_size);
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
  std::string data, ctx_list, json_path, csv_path, plot_path, position_scale = "geometric";
  PerplexityOptions o;
  std::int64_t position_buckets = 16;
  bool quiet = false;
};

// One evaluated context length.
struct CtxRun {
  std::int64_t ctx = 0;
  PerplexityResult r;
  std::vector<PositionBucket> buckets;
  double tokens_per_second() const { return r.seconds > 0 ? static_cast<double>(r.n_forward) / r.seconds : 0.0; }
};

std::string scheme_text(const PerplexityOptions& o) {
  std::ostringstream s;
  if (o.stride > 0) {
    s << "strided windows (Hugging Face scheme): a window of ctx tokens every " << o.stride
      << " tokens; the first window scores all its ctx - 1 predictions, each later one its last min(" << o.stride
      << ", ctx - 1)";
  } else {
    s << "non-overlapping windows of ctx tokens, scoring ";
    if (o.score_from == 0) {
      s << "every prediction (window positions 0 .. ctx - 2)";
    } else {
      s << "the predictions at window positions >= " << o.score_from;
    }
  }
  if (o.bos_first) s << "; each window's first token replaced by BOS";
  return s.str();
}

// Validates the flags that need no model, so bad input fails before anything is loaded.
std::vector<std::int64_t> checked_ctx_list(const PplArgs& a) {
  const std::vector<std::int64_t> ctxs = parse_int_list("--ctx", a.ctx_list);
  for (std::int64_t c : ctxs) ZEBRA_CHECK(c >= 2, "--ctx: every context length must be >= 2 tokens, got ", c);
  const std::int64_t smallest = *std::min_element(ctxs.begin(), ctxs.end());
  ZEBRA_CHECK(a.o.stride <= smallest, "--stride ", a.o.stride, " exceeds --ctx ", smallest,
              ": the stride must be at most every context length (a larger one would skip tokens)");
  ZEBRA_CHECK(a.o.stride == 0 || a.o.score_from == 0,
              "--score-from and --stride exclude each other: with a stride, the stride decides what is scored");
  ZEBRA_CHECK(a.position_buckets >= 1, "--position-buckets must be >= 1, got ", a.position_buckets);
  parse_position_scale(a.position_scale);
  return ctxs;
}

nlohmann::json run_json(const CtxRun& run, PositionScale scale) {
  const PerplexityResult& r = run.r;
  nlohmann::json buckets = nlohmann::json::array();
  for (const PositionBucket& b : run.buckets) {
    buckets.push_back({{"first", b.first},
                       {"last", b.last},
                       {"center", b.center(scale)},
                       {"scored_tokens", b.count},
                       {"loss", b.count > 0 ? nlohmann::json(b.mean_loss()) : nlohmann::json(nullptr)}});
  }
  nlohmann::json mean = nlohmann::json::array(), count = nlohmann::json::array();
  for (std::size_t p = 1; p < r.position_count.size(); ++p) {
    const std::int64_t n = r.position_count[p];
    mean.push_back(n > 0 ? nlohmann::json(r.position_loss_sum[p] / static_cast<double>(n)) : nlohmann::json(nullptr));
    count.push_back(n);
  }
  return {{"ctx", run.ctx},
          {"windows", r.n_windows},
          {"covered_tokens", r.n_tokens},
          {"forward_tokens", r.n_forward},
          {"scored_tokens", r.n_scored},
          {"loss_sum", r.loss_sum},
          {"loss", r.mean_loss()},
          {"loss_stderr", r.mean_loss_stderr()},
          {"ppl", r.ppl()},
          {"seconds", r.seconds},
          {"tokens_per_second", run.tokens_per_second()},
          {"position_buckets", buckets},
          {"position_loss", mean},
          {"position_count", count}};
}

void write_csvs(const std::string& path, const std::vector<CtxRun>& runs, const PerplexityOptions& o,
                PositionScale scale) {
  std::ostringstream rows, curve;
  rows << "ctx,stride,score_from,windows,scored_tokens,loss,loss_stderr,ppl,seconds,tokens_per_second\n";
  curve << "ctx,bucket,first_position,last_position,center,scored_tokens,loss\n";
  char buf[256];
  for (const CtxRun& run : runs) {
    const PerplexityResult& r = run.r;
    std::snprintf(buf, sizeof buf, "%lld,%lld,%lld,%lld,%lld,%.6f,%.6f,%.6f,%.3f,%.1f\n",
                  static_cast<long long>(run.ctx), static_cast<long long>(o.stride),
                  static_cast<long long>(o.score_from), static_cast<long long>(r.n_windows),
                  static_cast<long long>(r.n_scored), r.mean_loss(), r.mean_loss_stderr(), r.ppl(), r.seconds,
                  run.tokens_per_second());
    rows << buf;
    for (std::size_t k = 0; k < run.buckets.size(); ++k) {
      const PositionBucket& b = run.buckets[k];
      if (b.count == 0) continue;
      std::snprintf(buf, sizeof buf, "%lld,%zu,%lld,%lld,%.3f,%lld,%.6f\n", static_cast<long long>(run.ctx), k,
                    static_cast<long long>(b.first), static_cast<long long>(b.last), b.center(scale),
                    static_cast<long long>(b.count), b.mean_loss());
      curve << buf;
    }
  }
  write_file_atomic(path, rows.str());
  write_file_atomic(sibling_csv_path(path, "position"), curve.str());
}

// Loss against window position, one curve per context length (the bucket means at the bucket centers).
void plot_position_curves(const std::string& path, const std::vector<CtxRun>& runs, PositionScale scale,
                          const std::string& title) {
  std::ostringstream s, plot;
  plot << "plot ";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    s << "$ctx" << i << " << EOD\n";
    for (const PositionBucket& b : runs[i].buckets) {
      if (b.count > 0) s << b.center(scale) << ' ' << b.mean_loss() << '\n';
    }
    s << "EOD\n";
    plot << (i > 0 ? ", " : "") << "$ctx" << i << " using 1:2 with linespoints lw 2 pt 7 title 'ctx " << runs[i].ctx
         << "'";
  }
  s << "set title " << gnuplot_quote(title) << "\n"
    << "set xlabel 'position in the window (tokens read)'\nset ylabel 'mean loss (nats/token)'\nset grid\n"
    << "set key top right\n";
  if (scale == PositionScale::kGeometric) s << "set logscale x 2\n";
  s << plot.str() << "\n";
  render_plot(s.str(), path);
}

void run_ppl(const PplArgs& a) {
  const std::vector<std::int64_t> ctxs = checked_ctx_list(a);
  const PositionScale scale = parse_position_scale(a.position_scale);
  const LoadedModel model = load_for_eval(a.m);
  const ModelConfig& c = model.config();
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
  // Forward only over the loaded weights: no copy, no gradients.
  Transformer<float> transformer(model.weights(), RunOptions{true, 256});
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !a.quiet;
  std::vector<CtxRun> runs;
  for (std::int64_t ctx : ctxs) {
    o.ctx = ctx;
    Timer timer;
    CtxRun run;
    run.ctx = ctx;
    run.r = evaluate_perplexity(transformer, tokens, o, [&](std::int64_t done, std::int64_t total) {
      if (!tty) return;
      const double s = timer.seconds();
      std::fprintf(stderr, "\r  ctx %lld: window %lld / %lld  %.0f tok/s  ETA %.0f s   ", static_cast<long long>(ctx),
                   static_cast<long long>(done), static_cast<long long>(total), static_cast<double>(done * ctx) / s,
                   s / static_cast<double>(done) * static_cast<double>(total - done));
    });
    if (tty) std::fprintf(stderr, "\n");
    run.buckets = bucket_position_losses(run.r.position_loss_sum, run.r.position_count, a.position_buckets, scale);
    runs.push_back(std::move(run));
  }

  const std::int64_t n_data = std::ssize(tokens);
  const std::int64_t used = o.max_tokens > 0 ? std::min(o.max_tokens, n_data) : n_data;
  std::printf("model: %s\ndata:  %s (%s, %lld tokens, %lld used)\nscheme: %s\n", model.path.c_str(), a.data.c_str(),
              kind.c_str(), static_cast<long long>(n_data), static_cast<long long>(used), scheme_text(o).c_str());
  std::printf("%7s %8s %10s %9s %9s %10s %10s\n", "ctx", "windows", "scored", "loss", "+-", "ppl", "tok/s");
  for (const CtxRun& run : runs) {
    std::printf("%7lld %8lld %10lld %9.4f %9.4f %10.4f %10.0f\n", static_cast<long long>(run.ctx),
                static_cast<long long>(run.r.n_windows), static_cast<long long>(run.r.n_scored), run.r.mean_loss(),
                run.r.mean_loss_stderr(), run.r.ppl(), run.tokens_per_second());
  }
  std::printf(
      "\nmean loss by window position (%s buckets; position p = the prediction of token p from the p before "
      "it):\n%7s %13s %10s %9s\n",
      to_string(scale), "ctx", "positions", "scored", "loss");
  for (const CtxRun& run : runs) {
    for (const PositionBucket& b : run.buckets) {
      if (b.count == 0) continue;
      const std::string range = std::to_string(b.first) + "-" + std::to_string(b.last);
      std::printf("%7lld %13s %10lld %9.4f\n", static_cast<long long>(run.ctx), range.c_str(),
                  static_cast<long long>(b.count), b.mean_loss());
    }
  }
  std::fflush(stdout);

  if (!a.json_path.empty()) {
    nlohmann::json results = nlohmann::json::array();
    for (const CtxRun& run : runs) results.push_back(run_json(run, scale));
    nlohmann::json j = {{"eval", "ppl"},
                        {"model", model.path},
                        {"pattern", c.pattern_string()},
                        {"window", c.window},
                        {"positions", positions_string(c)},
                        {"data", a.data},
                        {"data_kind", kind},
                        {"data_tokens", tokens.size()},
                        {"scheme", o.stride > 0 ? "strided" : "non-overlapping"},
                        {"scheme_text", scheme_text(o)},
                        {"stride", o.stride},
                        {"score_from", o.score_from},
                        {"bos_first", o.bos_first},
                        {"max_tokens", o.max_tokens},
                        {"position_scale", to_string(scale)},
                        {"ctxs", ctxs},
                        {"results", results}};
    // One context length: its figures also at the top level, as before the list existed.
    if (runs.size() == 1) {
      for (const char* key : {"ctx", "windows", "scored_tokens", "loss_sum", "loss", "loss_stderr", "ppl", "seconds"}) {
        j[key] = results[0][key];
      }
    }
    write_file_atomic(a.json_path, j.dump(2) + "\n");
  }
  if (!a.csv_path.empty()) write_csvs(a.csv_path, runs, o, scale);
  if (!a.plot_path.empty()) {
    plot_position_curves(a.plot_path, runs, scale,
                         "loss by position: " + std::filesystem::path(model.path).filename().string() + " on " +
                             std::filesystem::path(a.data).filename().string());
  }
}

}  // namespace

void add_eval_ppl_command(CLI::App* eval) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = eval->add_subcommand(
      "ppl",
      "Perplexity in windows of --ctx tokens, for one or more context lengths on the same token stream.\n"
      "Default scheme: non-overlapping windows, scoring the predictions at window positions >= --score-from.\n"
      "With --stride S (Hugging Face 'perplexity of fixed-length models'): a window of ctx tokens starts every S\n"
      "tokens; the first window scores all its predictions, each later one only its last min(S, ctx - 1).\n"
      "Also reports the mean loss against the position in the window (--position-buckets).");
  add_model_options(cmd, a->m);
  cmd->add_option("data", a->data, "token dataset (.bin from zebra prepare) or text / JSONL corpus (optionally .zst)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--ctx", a->ctx_list, "window length(s) in tokens, comma-separated (e.g. 512,1024,2048)")->required();
  cmd->add_option("--stride", a->o.stride,
                  "strided evaluation: a window every S tokens, scoring only its last S predictions (the first "
                  "window scores all); 1 <= S <= every ctx (default: non-overlapping windows)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--score-from", a->o.score_from,
                  "score only predictions made at window positions >= K (of tokens K+1..ctx-1); llama.cpp uses ctx/2 "
                  "(not with --stride)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--bos-first", a->o.bos_first, "replace the first token of each window by BOS");
  cmd->add_option("--max-tokens", a->o.max_tokens, "evaluate only the first N tokens of the data (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--position-buckets", a->position_buckets,
                  "loss against window position in at most N buckets per ctx (default 16)");
  cmd->add_option("--position-scale", a->position_scale,
                  "bucket widths: geometric (equal on a log axis, default) or linear");
  cmd->add_option("--json", a->json_path, "also write everything (per ctx, and the per-position curve) as JSON");
  cmd->add_option("--csv", a->csv_path,
                  "also write one CSV row per ctx to this file, and the position curve to FILE_position.csv");
  cmd->add_option("--plot", a->plot_path, "also plot loss against position, one curve per ctx (gnuplot; .png or .svg)");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  cmd->callback([a] { run_ppl(*a); });
}

void add_eval_command(CLI::App& app) {
  CLI::App* eval =
      app.add_subcommand("eval", "Evaluate a model: ppl (perplexity), passkey (retrieval), tokens (per-token losses)");
  eval->require_subcommand(1);
  add_eval_ppl_command(eval);
  add_eval_passkey_command(eval);
  add_eval_tokens_command(eval);
  add_eval_tasks_command(eval);
}

}  // namespace zebra
