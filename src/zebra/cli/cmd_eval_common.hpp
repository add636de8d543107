// What the `zebra eval` sub-subcommands share: the model options, comma-separated lists, output file names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/list_options.hpp"
#include "zebra/io/model_loader.hpp"

namespace CLI {
class App;
}

namespace zebra {

// Options every evaluation shares: which model, re-laid how.
struct ModelArgs {
  std::string model, tokenizer;
  AdjustArgs adjust;  // re-laid / RoPE-adjusted how
  int threads = 0;
  std::string weights_dtype;  // "" = as stored
  std::string kv_dtype;       // "" = f32 (commands that decode with a cache: passkey, tasks)
};

void add_model_options(CLI::App* cmd, ModelArgs& m);
// --kv-dtype, for the evaluations that decode with a KV cache.
void add_cache_options(CLI::App* cmd, ModelArgs& m);
LoadedModel load_for_eval(const ModelArgs& m);

// Renders a gnuplot script into `path` (util/gnuplot.hpp) and says so on stderr: "plot: PATH", or a warning with
// the reason no plot was written (plotting is an extra; the evaluation goes on).
void render_plot(const std::string& script, const std::string& path, int width = 900, int height = 540);

// The second CSV file beside `path`: "out.csv" -> "out_<suffix>.csv", "out" -> "out_<suffix>.csv".
std::string sibling_csv_path(const std::string& path, const std::string& suffix);

// The eval registrations (cmd_eval.cpp registers `eval` and calls these).
void add_eval_ppl_command(CLI::App* eval);
void add_eval_passkey_command(CLI::App* eval);
void add_eval_tokens_command(CLI::App* eval);
void add_eval_tasks_command(CLI::App* eval);

}  // namespace zebra
