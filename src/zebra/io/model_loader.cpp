#include "zebra/io/model_loader.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "zebra/data/vocab_tokenizer.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/io/gguf_model.hpp"
#include "zebra/io/llama2c.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace fs = std::filesystem;

namespace {

// A GGUF file starts with the magic "GGUF"; anything else that is a regular file is taken for llama2.c.
bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

ModelConfig gguf_config(const GgufFile& f, const std::optional<ModelAdjustment>& pattern) {
  ModelConfig c = apply_adjustment(gguf_model_config(f), pattern);
  c.resolve();
  return c;
}

// fp32 parameters from a GGUF (training, conversion): every tensor dequantised.
ParameterSet<float> load_gguf_params(const std::string& path, const std::optional<ModelAdjustment>& pattern) {
  const GgufFile f = GgufFile::open(path);
  const ModelConfig config = gguf_config(f, pattern);
  // The tensors are checked against the file before the parameters are allocated from the config.
  const std::vector<GgufModelTensor> tensors = gguf_model_tensors(f, config);
  ParameterSet<float> params(config);
  for (const GgufModelTensor& t : tensors) {
    const TensorInfo* info = params.layout.find(t.name);
    ZEBRA_CHECK(info != nullptr, "GGUF '", path, "': tensor '", t.gguf_name, "' has no place in the model");
    const WeightMatrix m = t.matrix();
    float* dst = params.tensor(*info);
    for (std::int64_t r = 0; r < m.rows; ++r) quant::dequantize_row(m.dtype, m.row(r), dst + r * m.cols, m.cols);
  }
  return params;
}

// Typed weights from a GGUF: tensors stay in their stored types and borrow the mapping (the Q/K rows that
// had to be permuted are owned); `matrix_dtype` converts the matrices instead.
WeightStore load_gguf_store(const std::string& path, const std::optional<ModelAdjustment>& pattern,
                            std::optional<DType> matrix_dtype) {
  auto file = std::make_shared<GgufFile>(GgufFile::open(path));
  WeightStore store;
  store.config = gguf_config(*file, pattern);
  for (GgufModelTensor& t : gguf_model_tensors(*file, store.config)) {
    StoredTensor s;
    s.name = t.name;
    s.shape = t.shape;
    s.dtype = t.dtype;
    const bool convert = matrix_dtype && t.shape.size() == 2 && *matrix_dtype != t.dtype;
    const bool norm = t.shape.size() == 1 && t.dtype != DType::kF32;  // norms are read as F32
    if (convert || norm) {
      const DType to = norm ? DType::kF32 : *matrix_dtype;
      const WeightMatrix m = t.matrix();
      std::vector<float> row(static_cast<std::size_t>(m.cols));
      const std::size_t rb = dtype_row_bytes(to, m.cols);
      s.bytes.resize(rb * static_cast<std::size_t>(m.rows));
      for (std::int64_t r = 0; r < m.rows; ++r) {
        quant::dequantize_row(m.dtype, m.row(r), row.data(), m.cols);
        quant::quantize_row(to, row.data(), s.bytes.data() + static_cast<std::size_t>(r) * rb, m.cols);
      }
      s.dtype = to;
    } else if (t.permuted) {
      s.bytes.resize(t.owned.size());
      std::memcpy(s.bytes.data(), t.owned.data(), t.owned.size());
    } else {
      s.borrowed = t.borrowed;
    }
    store.tensors.push_back(std::move(s));
  }
  store.keepalive = file;
  prepare_for_inference(store);
  return store;
}

}  // namespace

const char* to_string(ModelFormat f) {
  switch (f) {
    case ModelFormat::kModelDir: return "model directory";
    case ModelFormat::kLlama2c: return "llama2.c checkpoint";
    case ModelFormat::kGguf: return "GGUF file";
  }
  return "?";
}

std::string find_model_tokenizer(const std::string& model_path) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) return find_tokenizer_file(model_path);
  if (is_gguf(model_path)) return model_path;  // the vocabulary is in the file's metadata
  const fs::path dir = fs::path(model_path).parent_path().empty() ? fs::path(".") : fs::path(model_path).parent_path();
  if (fs::is_regular_file(dir / "tokenizer.bin", ec)) return (dir / "tokenizer.bin").string();
  // llama2.c ships tokenizers as tok<vocab>.bin (tok512.bin for stories260K): take one when it is the only
  // such file, so that the choice is never a guess.
  std::vector<std::string> found;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && name.starts_with("tok") && name.ends_with(".bin") &&
        e.path() != fs::path(model_path)) {
      found.push_back(e.path().string());
    }
  }
  return found.size() == 1 ? found.front() : std::string();
}

ModelConfig peek_model_config(const std::string& path) {
  std::error_code ec;
  ZEBRA_CHECK(fs::exists(path, ec), "model '", path,
              "' does not exist (expected a model directory with config.json or a llama2.c .bin file)");
  ModelConfig c = fs::is_directory(path, ec) ? load_model_dir_config(path)
                  : is_gguf(path)            ? gguf_model_config(GgufFile::open(path))
                                             : llama2c_config(read_llama2c_header(path));
  c.resolve();
  return c;
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
    m.format = is_gguf(path) ? ModelFormat::kGguf : ModelFormat::kLlama2c;
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

LoadedModel load_any_model(const std::string& path, const std::optional<ModelAdjustment>& pattern,
                           const std::string& tokenizer_override) {
  return load_model(path, tokenizer_override, [&](LoadedModel& m) {
    m.params = m.format == ModelFormat::kModelDir ? load_model_dir(path, LoadModelOptions{pattern})
               : m.format == ModelFormat::kGguf   ? load_gguf_params(path, pattern)
                                                  : load_llama2c(path, pattern);
    m.params.config.resolve();
  });
}

LoadedModel load_model_for_inference(const std::string& path, const std::optional<ModelAdjustment>& pattern,
                                     const std::string& tokenizer_override, std::optional<DType> matrix_dtype) {
  return load_model(path, tokenizer_override, [&](LoadedModel& m) {
    if (m.format == ModelFormat::kModelDir) {
      m.store = load_model_dir_weights(path, LoadModelOptions{pattern}, matrix_dtype);
      prepare_for_inference(*m.store);
      return;
    }
    if (m.format == ModelFormat::kGguf) {
      m.store = load_gguf_store(path, pattern, matrix_dtype);
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
              "' (looked for tokenizer.model / tokenizer.bin / tokenizer.json",
              model.format == ModelFormat::kLlama2c ? " / tok*.bin" : "", " beside it): pass --tokenizer FILE");
  std::unique_ptr<Tokenizer> tok = load_tokenizer_or_model(model.tokenizer_path);
  ZEBRA_CHECK(tok->vocab_size() == model.config().vocab_size, "tokenizer '", model.tokenizer_path, "' has ",
              tok->vocab_size(), " tokens but model '", model.path, "' has a vocabulary of ",
              model.config().vocab_size);
  return tok;
}

std::unique_ptr<Tokenizer> load_tokenizer_or_model(const std::string& path) {
  std::error_code ec;
  ZEBRA_CHECK(fs::exists(path, ec), "tokenizer '", path, "' does not exist (expected a tokenizer file or a model)");
  if (!fs::is_directory(path, ec) && is_gguf(path)) return make_vocab_tokenizer(gguf_vocab(GgufFile::open(path)), path);
  if (!fs::is_directory(path, ec)) return load_tokenizer(path);
  const std::string file = find_tokenizer_file(path);
  ZEBRA_CHECK(!file.empty(), "model directory '", path,
              "' has no tokenizer (expected tokenizer.json, tokenizer.model or tokenizer.bin in it)");
  return load_tokenizer(file);
}

std::string export_model_tokenizer(const std::string& model_path, const std::string& out_dir) {
  const std::string file = find_model_tokenizer(model_path);
  if (file.empty() || !is_gguf(file)) return file;
  std::unique_ptr<Tokenizer> tok = load_tokenizer_or_model(file);
  fs::create_directories(out_dir);
  const std::string out = (fs::path(out_dir) / tok->file_name()).string();
  tok->save(out);
  return out;
}

}  // namespace zebra
