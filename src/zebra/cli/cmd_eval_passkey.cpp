// zebra eval passkey MODEL [--lengths 256,512,...] [--depths 0,0.25,...] [--trials N] [--seed S]
//                          [--new-tokens N] [--json F] [--csv F] [--plot F.png]
// Passkey retrieval (eval/passkey.hpp): for each depth x length x trial, a prompt of at most `length` tokens
// with a random 5-digit key at that depth; greedy decoding with the KV cache; exact match of the first integer.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/cli/weights_option.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/eval/greedy.hpp"
#include "zebra/eval/passkey.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/gnuplot.hpp"

namespace zebra {
namespace {

struct PasskeyArgs {
  ModelArgs m;
  std::string lengths = "256,512,1024,2048", depths = "0,0.25,0.5,0.75,1", json_path, csv_path, plot_path;
  std::int64_t trials = 5, new_tokens = 8;
  std::uint64_t seed = 1;
  bool quiet = false;
};

std::string depth_label(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

// Accuracy heat map: depth (rows, 0 at the top) against prompt length (columns), one labelled cell each.
void plot_heat_map(const std::string& path, const PasskeyOptions& o, const PasskeyResult& r, const std::string& title) {
  const std::size_t nl = o.lengths.size(), nd = o.depths.size();
  std::ostringstream s;
  s << "$acc << EOD\n";
  for (std::size_t d = 0; d < nd; ++d) {
    for (std::size_t l = 0; l < nl; ++l) s << l << ' ' << d << ' ' << r.cells[d * nl + l].accuracy() << '\n';
  }
  s << "EOD\n";
  s << "set title " << gnuplot_quote(title) << "\nset xlabel 'prompt length (tokens)'\nset ylabel 'key depth'\n"
    << "set xrange [-0.5:" << static_cast<double>(nl) - 0.5 << "]\nset yrange [" << static_cast<double>(nd) - 0.5
    << ":-0.5]\nset cbrange [0:1]\nset cblabel 'accuracy'\nset palette defined (0 '#b2182b', 0.5 '#f7f7f7', 1 "
       "'#1a9850')\n"
    << "set xtics (";
  for (std::size_t l = 0; l < nl; ++l) s << (l > 0 ? ", " : "") << "'" << o.lengths[l] << "' " << l;
  s << ")\nset ytics (";
  for (std::size_t d = 0; d < nd; ++d) s << (d > 0 ? ", " : "") << "'" << depth_label(o.depths[d]) << "' " << d;
  s << ")\nplot $acc using 1:2:3 with image notitle, $acc using 1:2:(sprintf('%.2f', $3)) with labels notitle\n";
  render_plot(s.str(), path, 800, 560);
}

void run_passkey(const PasskeyArgs& a) {
  const std::optional<DType> kv_dtype = parse_kv_dtype(a.m.kv_dtype);  // refused before any work
  PasskeyOptions o;
  o.lengths = parse_int_list("--lengths", a.lengths);
  o.depths = parse_double_list("--depths", a.depths);
  o.trials = a.trials;
  o.seed = a.seed;
  validate_passkey_options(o);
  ZEBRA_CHECK(a.new_tokens >= 1, "--new-tokens must be >= 1, got ", a.new_tokens);

  const LoadedModel model = load_for_eval(a.m);
  const ModelConfig& c = model.config();
  const std::unique_ptr<Tokenizer> tok = load_model_tokenizer(model);
  std::fprintf(stderr, "model %s: %lld layers %s, window %lld; tokenizer %s\n", model.path.c_str(),
               static_cast<long long>(c.n_layers), c.pattern_string().c_str(), static_cast<long long>(c.window),
               model.tokenizer_path.c_str());
  SessionOptions so;
  so.kv_dtype = kv_dtype;
  so.max_context = *std::max_element(o.lengths.begin(), o.lengths.end()) + a.new_tokens;
  // Each prompt in one chunk: a first chunk runs the tiled attention kernel (model/generator.cpp).
  so.chunk_size = *std::max_element(o.lengths.begin(), o.lengths.end());
  InferenceSession<float> session(model.weights(), so);
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !a.quiet;
  const EncodeFn encode = [&](std::string_view text) { return tok->encode(text); };
  const PasskeyResult r = evaluate_passkey(
      o, encode, tok->bos_id(),
      [&](const std::vector<std::int32_t>& prompt) {
        return tok->decode(greedy_continue(session, prompt, a.new_tokens, tok->eos_id()));
      },
      [&](std::int64_t done, std::int64_t total) {
        if (tty)
          std::fprintf(stderr, "\r  trial %lld / %lld   ", static_cast<long long>(done), static_cast<long long>(total));
      });
  if (tty) std::fprintf(stderr, "\n");

  const std::size_t nl = o.lengths.size();
  std::printf(
      "passkey retrieval: %s\n%lld trials per cell (keys from seed %llu), greedy decoding of %lld tokens, "
      "exact match of the first integer\n",
      model.path.c_str(), static_cast<long long>(o.trials), static_cast<unsigned long long>(o.seed),
      static_cast<long long>(a.new_tokens));
  std::printf("%-14s", "depth\\length");
  for (std::int64_t l : o.lengths) std::printf(" %8lld", static_cast<long long>(l));
  std::printf("\n");
  for (std::size_t d = 0; d < o.depths.size(); ++d) {
    std::printf("%-14s", depth_label(o.depths[d]).c_str());
    for (std::size_t l = 0; l < nl; ++l) std::printf(" %8.2f", r.cells[d * nl + l].accuracy());
    std::printf("\n");
  }
  const double overall = static_cast<double>(r.n_correct()) / static_cast<double>(r.n_trials());
  std::printf("accuracy: %lld / %lld = %.3f (%.1f s)\n", static_cast<long long>(r.n_correct()),
              static_cast<long long>(r.n_trials()), overall, r.seconds);
  std::fflush(stdout);

  if (!a.json_path.empty()) {
    nlohmann::json cells = nlohmann::json::array();
    for (const PasskeyCell& cell : r.cells) {
      nlohmann::json outputs = nlohmann::json::array();
      for (const PasskeyTrial& t : cell.trials) {
        outputs.push_back({{"key", t.key}, {"output", t.output}, {"correct", t.correct}});
      }
      cells.push_back({{"length", cell.length},
                       {"depth", cell.depth},
                       {"prompt_tokens", cell.prompt_tokens},
                       {"key_position", cell.key_position},
                       {"correct", cell.n_correct()},
                       {"trials", cell.trials.size()},
                       {"accuracy", cell.accuracy()},
                       {"outputs", outputs}});
    }
    const nlohmann::json j = {{"eval", "passkey"},
                              {"model", model.path},
                              {"pattern", c.pattern_string()},
                              {"window", c.window},
                              {"positions", positions_string(c)},
                              {"lengths", o.lengths},
                              {"depths", o.depths},
                              {"trials", o.trials},
                              {"seed", o.seed},
                              {"keys", passkey_keys(o.trials, o.seed)},
                              {"new_tokens", a.new_tokens},
                              {"correct", r.n_correct()},
                              {"total", r.n_trials()},
                              {"accuracy", overall},
                              {"seconds", r.seconds},
                              {"cells", cells}};
    write_file_atomic(a.json_path, j.dump(2) + "\n");
  }
  if (!a.csv_path.empty()) {
    std::ostringstream csv;
    csv << "length,depth,trials,correct,accuracy,prompt_tokens,key_position\n";
    for (const PasskeyCell& cell : r.cells) {
      csv << cell.length << ',' << depth_label(cell.depth) << ',' << cell.trials.size() << ',' << cell.n_correct()
          << ',' << cell.accuracy() << ',' << cell.prompt_tokens << ',' << cell.key_position << '\n';
    }
    write_file_atomic(a.csv_path, csv.str());
  }
  if (!a.plot_path.empty())
    plot_heat_map(a.plot_path, o, r, "passkey retrieval: " + std::filesystem::path(model.path).filename().string());
}

}  // namespace

void add_eval_passkey_command(CLI::App* eval) {
  auto a = std::make_shared<PasskeyArgs>();
  CLI::App* cmd = eval->add_subcommand(
      "passkey",
      "Passkey retrieval (Mohtashami & Jaggi 2023): a random 5-digit key hidden at a relative depth of repeated\n"
      "filler ('The grass is green. The sky is blue. ...'), asked for at the end; greedy decoding with the KV\n"
      "cache; a trial is correct when the first integer of the answer equals the key. Accuracy per depth x length.");
  add_model_options(cmd, a->m);
  add_cache_options(cmd, a->m);
  cmd->add_option("--lengths", a->lengths,
                  "prompt lengths in tokens, BOS included, comma-separated (default "
                  "256,512,1024,2048); each prompt is the longest that fits");
  cmd->add_option("--depths", a->depths,
                  "relative depths of the key in the filler, in [0, 1], comma-separated "
                  "(default 0,0.25,0.5,0.75,1; 0 = first, 1 = right before the question)");
  cmd->add_option("--trials", a->trials, "random keys per cell (default 5; the same keys in every cell)");
  cmd->add_option("--seed", a->seed, "seed of the random keys (default 1)");
  cmd->add_option("--new-tokens", a->new_tokens, "tokens to decode after the prompt (default 8)");
  cmd->add_option("--json", a->json_path, "also write everything (per cell and trial, with the outputs) as JSON");
  cmd->add_option("--csv", a->csv_path, "also write one CSV row per cell (length, depth, accuracy, ...)");
  cmd->add_option("--plot", a->plot_path, "also draw the accuracy heat map, depth x length (gnuplot; .png or .svg)");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  cmd->callback([a] { run_passkey(*a); });
}

}  // namespace zebra
