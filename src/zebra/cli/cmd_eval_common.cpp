#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/cli/weights_option.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "zebra/util/error.hpp"
#include "zebra/util/gnuplot.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {

void add_model_options(CLI::App* cmd, ModelArgs& m) {
  cmd->add_option("model", m.model, "model directory (config.json + safetensors) or llama2.c .bin checkpoint")
      ->required();
  cmd->add_option("--tokenizer", m.tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  add_adjust_options(cmd, m.adjust, "evaluate the model");
  cmd->add_option("--threads", m.threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  add_weights_dtype_option(cmd, m.weights_dtype);
}

void add_cache_options(CLI::App* cmd, ModelArgs& m) { add_kv_dtype_option(cmd, m.kv_dtype); }

LoadedModel load_for_eval(const ModelArgs& m) {
  if (m.threads > 0) set_num_threads(m.threads);
  return load_model_for_inference(m.model, adjustment_of(m.adjust), m.tokenizer, parse_weights_dtype(m.weights_dtype));
}

void render_plot(const std::string& script, const std::string& path, int width, int height) {
  const std::string why = render_gnuplot(script, path, width, height);
  if (why.empty()) {
    std::fprintf(stderr, "plot: %s\n", path.c_str());
  } else {
    std::fprintf(stderr, "warning: %s\n", why.c_str());
  }
}

std::string sibling_csv_path(const std::string& path, const std::string& suffix) {
  const bool csv = path.size() >= 4 && path.substr(path.size() - 4) == ".csv";
  return (csv ? path.substr(0, path.size() - 4) : path) + "_" + suffix + ".csv";
}

}  // namespace zebra
