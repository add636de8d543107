#include "zebra/io/model_loader.hpp"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "zebra/io/llama2c.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace fs = std::filesystem;

const char* to_string(ModelFormat f) {
  switch (f) {
    case ModelFormat::kModelDir: return "model directory";
    case ModelFormat::kLlama2c: return "llama2.c checkpoint";
  }
  return "?";
}

std::string find_model_tokenizer(const std::string& model_path) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) return find_tokenizer_file(model_path);
  const fs::path dir = fs::path(model_path).parent_path().empty() ? fs::path(".") : fs::path(model_path).parent_path();
  if (fs::is_regular_file(dir / "tokenizer.bin", ec)) return (dir / "tokenizer.bin").string();
  // llama2.c ships tokenizers as tok<vocab>.bin (tok512.bin for stories260K): take one when it is the only
  // such file, so that the choice is never a guess.
  std::vector<std::string> found;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && name.starts_with("tok") && name.ends_with(".bin") && e.path() != fs::path(model_path)) {
      found.push_back(e.path().string());
    }
  }
  return found.size() == 1 ? found.front() : std::string();
}

ModelConfig peek_model_config(const std::string& path) {
  std::error_code ec;
  ZEBRA_CHECK(fs::exists(path, ec), "model '", path,
              "' does not exist (expected a model directory with config.json or a llama2.c .bin file)");
  ModelConfig c = fs::is_directory(path, ec) ? load_model_dir_config(path) : llama2c_config(read_llama2c_header(path));
  c.resolve();
  return c;
}

std::optional<PatternOverride> pattern_from_flags(const ModelConfig& model, std::int64_t group_size,
                                                  std::int64_t window) {
  if (group_size <= 0 && window <= 0) return std::nullopt;
  PatternOverride p{group_size > 0 ? group_size : model.group_size, window > 0 ? window : model.window};
  ZEBRA_CHECK(group_size > 0 || p.group_size > 1, "--window ", window,
              " alone does not change a model whose layers are all global (group size 1): give --group-size too");
  return p;
}

LoadedModel load_any_model(const std::string& path, const std::optional<PatternOverride>& pattern,
                           const std::string& tokenizer_override) {
  std::error_code ec;
  ZEBRA_CHECK(fs::exists(path, ec), "model '", path,
              "' does not exist (expected a model directory with config.json or a llama2.c .bin file)");
  LoadedModel m;
  m.path = path;
  if (fs::is_directory(path, ec)) {
    ZEBRA_CHECK(fs::is_regular_file(fs::path(path) / "config.json", ec), "model directory '", path,
                "' has no config.json (expected a Hugging Face / zebra model directory)");
    m.format = ModelFormat::kModelDir;
    LoadModelOptions options;
    options.pattern = pattern;
    m.params = load_model_dir(path, options);
  } else {
    ZEBRA_CHECK(fs::is_regular_file(path, ec), "model '", path, "' is neither a directory nor a regular file");
    m.format = ModelFormat::kLlama2c;
    m.params = load_llama2c(path, pattern);
  }
  m.params.config.resolve();
  if (!tokenizer_override.empty()) {
    ZEBRA_CHECK(fs::is_regular_file(tokenizer_override, ec), "tokenizer '", tokenizer_override,
                "' does not exist or is not a file");
    m.tokenizer_path = tokenizer_override;
  } else {
    m.tokenizer_path = find_model_tokenizer(path);
  }
  return m;
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const LoadedModel& model) {
  ZEBRA_CHECK(!model.tokenizer_path.empty(), "no tokenizer found for model '", model.path,
              "' (looked for tokenizer.model / tokenizer.bin", model.format == ModelFormat::kLlama2c ? " / tok*.bin" : "",
              " beside it): pass --tokenizer FILE");
  std::unique_ptr<Tokenizer> tok = load_tokenizer(model.tokenizer_path);
  ZEBRA_CHECK(tok->vocab_size() == model.params.config.vocab_size, "tokenizer '", model.tokenizer_path, "' has ",
              tok->vocab_size(), " tokens but model '", model.path, "' has a vocabulary of ",
              model.params.config.vocab_size);
  return tok;
}

}  // namespace zebra
