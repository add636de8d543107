#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/cli/weights_option.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {

void add_model_options(CLI::App* cmd, ModelArgs& m) {
  cmd->add_option("model", m.model, "model directory (config.json + safetensors) or llama2.c .bin checkpoint")
      ->required();
  cmd->add_option("--tokenizer", m.tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--group-size", m.group_size, "evaluate the model re-laid as Zebra with this group size L")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--window", m.window, "local-attention window for --group-size")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", m.threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  add_weights_dtype_option(cmd, m.weights_dtype);
}

LoadedModel load_for_eval(const ModelArgs& m) {
  if (m.threads > 0) set_num_threads(m.threads);
  return load_model_for_inference(m.model, pattern_from_flags(peek_model_config(m.model), m.group_size, m.window),
                                  m.tokenizer, parse_weights_dtype(m.weights_dtype));
}

namespace {

// The comma-separated items of `text`, spaces around each trimmed; empty items are refused.
std::vector<std::string> split_list(const std::string& flag, const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    item = a == std::string::npos ? std::string() : item.substr(a, b - a + 1);
    ZEBRA_CHECK(!item.empty(), flag, ": expected a comma-separated list of numbers, got '", text, "' (an empty item)");
    items.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

}  // namespace

std::vector<std::int64_t> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<std::int64_t> out;
  for (const std::string& item : split_list(flag, text)) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    ZEBRA_CHECK(end != nullptr && *end == '\0', flag, ": expected integers, got '", item, "' in '", text, "'");
    out.push_back(v);
  }
  return out;
}

std::vector<double> parse_double_list(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split_list(flag, text)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    ZEBRA_CHECK(end != nullptr && *end == '\0', flag, ": expected numbers, got '", item, "' in '", text, "'");
    out.push_back(v);
  }
  return out;
}

std::string sibling_csv_path(const std::string& path, const std::string& suffix) {
  const bool csv = path.size() >= 4 && path.substr(path.size() - 4) == ".csv";
  return (csv ? path.substr(0, path.size() - 4) : path) + "_" + suffix + ".csv";
}

}  // namespace zebra
