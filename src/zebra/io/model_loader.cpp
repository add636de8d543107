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

namespace {

// Checks the path and fills in where the model and its tokenizer are; `load` fills in the weights.
template <typename Load>
LoadedModel load_model(const std::string& path, const std::string& tokenizer_override, Load&& load) {
  std::error_code ec;
  ZEBRA_CHECK(fs::exists(path, ec), "model '", path,
              "' does not exist (expected a model directory with config.json or a llama2.c .bin file)");
  LoadedModel m;
  m.path = path;
  if (fs::is_directory(path, ec)) {
    ZEBRA_CHECK(fs::is_regular_file(fs::path(path) / "config.json", ec), "model directory '", path,
                "' has no config.json (expected a Hugging Face / zebra model directory)");
    m.format = ModelFormat::kModelDir;
  } else {
    ZEBRA_CHECK(fs::is_regular_file(path, ec), "model '", path, "' is neither a directory nor a regular file");
    m.format = ModelFormat::kLlama2c;
  }
  load(m);
  if (!tokenizer_override.empty()) {
    ZEBRA_CHECK(fs::is_regular_file(tokenizer_override, ec), "tokenizer '", tokenizer_override,
                "' does not exist or is not a file");
    m.tokenizer_path = tokenizer_override;
  } else {
    m.tokenizer_path = find_model_tokenizer(path);
  }
  return m;
}

}  // namespace

LoadedModel load_any_model(const std::string& path, const std::optional<PatternOverride>& pattern,
                           const std::string& tokenizer_override) {
  return load_model(path, tokenizer_override, [&](LoadedModel& m) {
    m.params = m.format == ModelFormat::kModelDir ? load_model_dir(path, LoadModelOptions{pattern})
                                                  : load_llama2c(path, pattern);
    m.params.config.resolve();
  });
}

LoadedModel load_model_for_inference(const std::string& path, const std::optional<PatternOverride>& pattern,
                                     const std::string& tokenizer_override, std::optional<DType> matrix_dtype) {
  return load_model(path, tokenizer_override, [&](LoadedModel& m) {
    if (m.format == ModelFormat::kModelDir) {
      m.store = load_model_dir_weights(path, LoadModelOptions{pattern}, matrix_dtype);
      return;
    }
    // llama2.c files hold fp32 with interleaved RoPE rows: read densely (the permutation needs it), then keep
    // the dense parameters or convert them.
    m.params = load_llama2c(path, pattern);
    m.params.config.resolve();
    if (matrix_dtype && *matrix_dtype != DType::kF32) {
      m.store = store_from_params(m.params, *matrix_dtype);
      m.params = ParameterSet<float>();
    }
  });
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const LoadedModel& model) {
  ZEBRA_CHECK(!model.tokenizer_path.empty(), "no tokenizer found for model '", model.path,
              "' (looked for tokenizer.model / tokenizer.bin", model.format == ModelFormat::kLlama2c ? " / tok*.bin" : "",
              " beside it): pass --tokenizer FILE");
  std::unique_ptr<Tokenizer> tok = load_tokenizer(model.tokenizer_path);
  ZEBRA_CHECK(tok->vocab_size() == model.config().vocab_size, "tokenizer '", model.tokenizer_path, "' has ",
              tok->vocab_size(), " tokens but model '", model.path, "' has a vocabulary of ",
              model.config().vocab_size);
  return tok;
}

}  // namespace zebra
