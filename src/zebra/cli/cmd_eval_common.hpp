// What the `zebra eval` sub-subcommands share: the model options, comma-separated lists, output file names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zebra/io/model_loader.hpp"

namespace CLI {
class App;
}

namespace zebra {

// Options every evaluation shares: which model, re-laid how.
struct ModelArgs {
  std::string model, tokenizer;
  std::int64_t group_size = 0, window = 0;
  int threads = 0;
  std::string weights_dtype;  // "" = as stored
};

void add_model_options(CLI::App* cmd, ModelArgs& m);
LoadedModel load_for_eval(const ModelArgs& m);

// "512,1024, 2048" -> {512, 1024, 2048}. Throws naming `flag` and the bad item (empty, not an integer).
std::vector<std::int64_t> parse_int_list(const std::string& flag, const std::string& text);
// "0,0.25,.5" -> {0, 0.25, 0.5}. Throws naming `flag` and the bad item.
std::vector<double> parse_double_list(const std::string& flag, const std::string& text);

// The second CSV file beside `path`: "out.csv" -> "out_<suffix>.csv", "out" -> "out_<suffix>.csv".
std::string sibling_csv_path(const std::string& path, const std::string& suffix);

// The eval registrations (cmd_eval.cpp registers `eval` and calls these).
void add_eval_ppl_command(CLI::App* eval);
void add_eval_passkey_command(CLI::App* eval);
void add_eval_tokens_command(CLI::App* eval);

}  // namespace zebra
