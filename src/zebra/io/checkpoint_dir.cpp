#include "zebra/io/checkpoint_dir.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"
#include "zebra/util/log.hpp"

namespace zebra {
namespace fs = std::filesystem;
using json = nlohmann::json;

ModelConfig apply_adjustment(const ModelConfig& config, const std::optional<ModelAdjustment>& adjustment) {
  if (!adjustment) return config;
  return adjust_config(config, *adjustment);
}

// ---------------------------------------------------------------------------------------------
// Save

void write_model_files(const std::string& dir, const ParameterSet<float>& params, const SaveModelOptions& options) {
  const ModelConfig& c = params.config;
  if (params.data.size() != params.layout.total) {
    fail("save model '", dir, "': parameter buffer holds ", params.data.size(), " values, layout expects ",
         params.layout.total);
  }
  json config = config_to_json(c);
  // transformers' name of the stored dtype (it loads in this dtype unless told otherwise).
  config["torch_dtype"] = options.dtype == DType::kBF16  ? "bfloat16"
                          : options.dtype == DType::kF16 ? "float16"
                                                         : "float32";
  if (model_family(c) == ModelFamily::kZebra) {
    log_warn("save model '", dir, "': pos_embedding ", to_string(c.pos_embedding),
             " has no Hugging Face equivalent; config.json says model_type \"zebra\", which transformers refuses to "
             "load (zebra reads it)");
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");

  // The layout has no lm_head.weight when embeddings are tied, which is what Hugging Face expects.
  std::vector<TensorToWrite> tensors;
  tensors.reserve(params.layout.tensors.size());
  for (const TensorInfo& t : params.layout.tensors) {
    TensorToWrite w;
    w.name = t.name;
    w.shape = t.shape;
    w.f32 = params.tensor(t);
    tensors.push_back(std::move(w));
  }
  std::map<std::string, std::string> metadata = options.metadata;
  metadata["format"] = "pt";  // transformers refuses safetensors files without it
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, metadata, options.dtype);

  if (options.tokenizer != nullptr) {
    if (options.tokenizer->vocab_size() > c.vocab_size) {
      fail("save model '", dir, "': tokenizer has ", options.tokenizer->vocab_size(),
           " tokens, more than the model's vocab_size ", c.vocab_size);
    }
    options.tokenizer->save((fs::path(dir) / options.tokenizer->file_name()).string());
  } else if (!options.tokenizer_file.empty()) {
    fs::path src(options.tokenizer_file);
    if (!fs::is_regular_file(src)) fail("save model '", dir, "': tokenizer file '", src.string(), "' not found");
    std::error_code ec;
    fs::copy_file(src, fs::path(dir) / src.filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) fail("save model '", dir, "': cannot copy tokenizer '", src.string(), "': ", ec.message());
    // A tokenizer.json keeps BOS/EOS and the chat template in the tokenizer_config.json beside it.
    const fs::path config = src.parent_path() / "tokenizer_config.json";
    if (src.filename() == "tokenizer.json" && fs::is_regular_file(config, ec)) {
      fs::copy_file(config, fs::path(dir) / config.filename(), fs::copy_options::overwrite_existing, ec);
      if (ec) fail("save model '", dir, "': cannot copy '", config.string(), "': ", ec.message());
    }
  }
  if (options.extra_files) options.extra_files(dir);
}

void save_model_dir(const std::string& dir, const ParameterSet<float>& params, const SaveModelOptions& options) {
  // "out/" would put the temporary directory inside the target ("out/.tmp.N"): strip trailing separators.
  fs::path target = fs::path(dir).lexically_normal();
  while (!target.empty() && !target.has_filename() && target.has_parent_path() && target != target.root_path()) {
    target = target.parent_path();
  }
  if (target.empty() || target.filename() == "." || target.filename() == "..") {
    fail("save model: '", dir, "' does not name a directory that can be replaced (give a path ending in a name)");
  }
  write_directory_atomic(target.string(), [&](const std::string& tmp) { write_model_files(tmp, params, options); });
}

std::string find_tokenizer_file(const std::string& dir) {
  for (const char* name : {"tokenizer.model", "tokenizer.bin", "tokenizer.json"}) {
    fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Load

namespace {

// The safetensors files of a directory and which one holds each tensor.
struct WeightSource {
  std::vector<SafetensorsFile> files;
  std::map<std::string, std::size_t> where;  // tensor name -> index into files

  const SafetensorsFile* find(const std::string& name) const {
    auto it = where.find(name);
    return it == where.end() ? nullptr : &files[it->second];
  }
};

// A shard name from an index file must be a plain file name inside the directory, no longer than a file name
// can be (NAME_MAX; longer, std::filesystem would throw its own error on the first look at it).
void check_shard_name(const std::string& index_path, const std::string& name) {
  constexpr std::size_t kMaxFileName = 255;
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos) {
    fail("'", index_path, "': shard file name '", bounded(name), "' is not a plain file name in the model directory");
  }
  if (name.size() > kMaxFileName) {
    fail("'", index_path, "': shard file name '", bounded(name), "' is longer than ", kMaxFileName, " bytes");
  }
}

WeightSource open_weights(const std::string& dir) {
  WeightSource src;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    src.files.push_back(SafetensorsFile::open(single.string()));
    for (const auto& [name, e] : src.files[0].tensors()) src.where[name] = 0;
    return src;
  }
  if (!fs::exists(index)) {
    std::string hint;
    if (fs::exists(fs::path(dir) / "pytorch_model.bin"))
      hint = " (pytorch_model.bin is not read: convert it to safetensors)";
    fail("model directory '", dir, "': neither model.safetensors nor model.safetensors.index.json found", hint);
  }
  const std::string ipath = index.string();
  const std::string index_text = read_file(ipath);
  check_json_depth(index_text, "'" + ipath + "'");
  json j = json::parse(index_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("'", ipath, "': not valid JSON");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    fail("'", ipath, "': expected an object with a 'weight_map' object {tensor name: shard file}");
  }
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shard_names;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      fail("'", ipath, "': weight_map['", bounded(it.key()), "']: expected a file name, found ",
           shown_json(it.value()));
    }
    std::string shard = it.value().get<std::string>();
    check_shard_name(ipath, shard);
    weight_map[it.key()] = shard;
    shard_names.insert(shard);
  }
  if (shard_names.empty()) fail("'", ipath, "': weight_map is empty");
  std::map<std::string, std::size_t> shard_index;
  for (const std::string& shard : shard_names) {
    fs::path p = fs::path(dir) / shard;
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      fail("'", ipath, "' lists shard '", bounded(shard), "', which is missing from '", dir, "'",
           ec ? " (" + ec.message() + ")" : std::string());
    }
    shard_index[shard] = src.files.size();
    src.files.push_back(SafetensorsFile::open(p.string()));
  }
  for (std::size_t i = 0; i < src.files.size(); ++i) {
    for (const auto& [name, e] : src.files[i].tensors()) {
      auto [it, inserted] = src.where.emplace(name, i);
      if (!inserted) {
        fail("model directory '", dir, "': tensor '", name, "' is in two shards, '", src.files[it->second].path(),
             "' and '", src.files[i].path(), "'");
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    if (!src.files[shard_index[shard]].contains(name)) {
      fail("'", ipath, "': weight_map puts tensor '", bounded(name), "' in '", bounded(shard),
           "', which does not hold it");
    }
  }
  return src;
}

std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) s += str_cat(" and ", names.size() - 5, " more");
  return s;
}

bool harmless_extra(const std::string& name) { return name.ends_with("rotary_emb.inv_freq"); }

ModelConfig resolve_config(const std::string& dir, const WeightSource& src, const LoadModelOptions& options) {
  const std::string cpath = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cpath)) fail("model directory '", dir, "': config.json not found");
  const std::string config_text = read_file(cpath);
  check_json_depth(config_text, "'" + cpath + "'");
  json j = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("'", cpath, "': not valid JSON (expected a config object)");
  ModelConfig config;
  try {
    config = config_from_json(j);
  } catch (const Error& e) {
    fail("'", cpath, "': ", e.what());
  }
  if (j.is_object() && (!j.contains("tie_word_embeddings") || j["tie_word_embeddings"].is_null())) {
    config.tie_embeddings = src.find("lm_head.weight") == nullptr;
  }
  try {
    return apply_adjustment(config, options.pattern);
  } catch (const Error& e) {
    fail("model directory '", dir, "': pattern override: ", e.what());
  }
}

}  // namespace

ModelConfig load_model_dir_config(const std::string& dir, const LoadModelOptions& options) {
  WeightSource src = open_weights(dir);
  return resolve_config(dir, src, options);
}

namespace {

// Every tensor of the layout is present, and nothing the model does not use.
void check_tensor_names(const std::string& dir, const WeightSource& src, const ModelConfig& config,
                        const ParamLayout& layout) {
  std::vector<std::string> missing;
  for (const TensorInfo& t : layout.tensors) {
    if (src.find(t.name) == nullptr) missing.push_back(t.name + " " + shape_string(t.shape));
  }
  if (!missing.empty()) {
    fail("model directory '", dir, "': ", missing.size(), " expected tensor(s) missing: ", list_names(missing));
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, index] : src.where) {
    if (layout.find(name) != nullptr || harmless_extra(name)) continue;
    if (name == "lm_head.weight" && config.tie_embeddings) continue;  // the embedding serves as the head
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    fail("model directory '", dir, "': ", unexpected.size(), " tensor(s) the model (", config.n_layers,
         " layers, pos_embedding ", to_string(config.pos_embedding), ", tie_word_embeddings ",
         config.tie_embeddings ? "true" : "false", ") does not use: ", list_names(unexpected));
  }
}

// Every tensor has the shape the config implies, checked before anything is allocated: a config.json that
// claims a huge vocab_size next to a small embedding is refused by name, not by std::bad_alloc.
void check_tensor_shapes(const WeightSource& src, const ModelConfig& config, const ParamLayout& layout) {
  for (const TensorInfo& t : layout.tensors) {
    const SafetensorsFile* f = src.find(t.name);
    const TensorEntry& e = f->entry(t.name);
    if (e.shape == t.shape) continue;
    fail("'", f->path(), "', tensor '", t.name, "': expected shape ", shape_string(t.shape), ", found ",
         shape_string(e.shape), " (config.json: vocab_size ", config.vocab_size, ", hidden_size ", config.d_model,
         ", intermediate_size ", config.ffn_dim, ", head_dim ", config.head_dim, ")");
  }
}

}  // namespace

ParameterSet<float> load_model_dir(const std::string& dir, const LoadModelOptions& options) {
  WeightSource src = open_weights(dir);
  ModelConfig config = resolve_config(dir, src, options);
  config.resolve();
  const ParamLayout layout = make_param_layout(config);
  check_tensor_names(dir, src, config, layout);
  check_tensor_shapes(src, config, layout);
  ParameterSet<float> params(config);
  for (const TensorInfo& t : params.layout.tensors) {
    const SafetensorsFile* f = src.find(t.name);
    f->read(t.name, params.tensor(t), t.shape);
    f->drop(t.name);
  }
  if (config.tie_embeddings) {
    if (const SafetensorsFile* f = src.find("lm_head.weight")) {
      // The config says tied: the embedding serves as the head and lm_head.weight is ignored.
      const TensorInfo& embed = *params.layout.find("model.embed_tokens.weight");
      bool same = f->entry("lm_head.weight").shape == embed.shape;
      if (same) {
        std::vector<float> head(embed.numel);
        f->read("lm_head.weight", head.data(), embed.numel);
        same = std::memcmp(head.data(), params.tensor(embed), embed.numel * sizeof(float)) == 0;
      }
      if (!same) {
        log_warn("model directory '", dir, "': config.json says tie_word_embeddings, but lm_head.weight differs from ",
                 "the embedding; using the embedding as the head (as transformers does)");
      }
    }
  }
  return params;
}

WeightStore load_model_dir_weights(const std::string& dir, const LoadModelOptions& options,
                                   std::optional<DType> matrix_dtype) {
  if (matrix_dtype) {
    ZEBRA_CHECK(*matrix_dtype == DType::kF32 || *matrix_dtype == DType::kBF16 || *matrix_dtype == DType::kF16,
                "model directory '", dir, "': weights can be held as f32, bf16 or f16, not ", to_string(*matrix_dtype));
  }
  WeightSource src = open_weights(dir);
  WeightStore store;
  store.config = resolve_config(dir, src, options);
  store.config.resolve();
  const ParamLayout layout = make_param_layout(store.config);
  check_tensor_names(dir, src, store.config, layout);
  check_tensor_shapes(src, store.config, layout);
  for (const TensorInfo& t : layout.tensors) {
    const SafetensorsFile* f = src.find(t.name);
    const TensorEntry& e = f->entry(t.name);
    StoredTensor out;
    out.name = t.name;
    out.shape = t.shape;
    const bool matrix = t.shape.size() == 2 && t.name != "model.embed_positions.weight";
    // Matrices keep their stored 16-bit type unless told otherwise (F64 becomes F32); norms and learned
    // positions are read as F32.
    DType dt = DType::kF32;
    if (matrix) dt = matrix_dtype ? *matrix_dtype : (e.convertible && e.dtype != DType::kF64 ? e.dtype : DType::kF32);
    out.dtype = dt;
    out.bytes.resize(t.numel * dtype_size(dt));
    if (e.convertible && e.dtype == dt) {
      const std::span<const std::uint8_t> raw = f->raw(t.name);
      std::memcpy(out.bytes.data(), raw.data(), raw.size());
    } else if (dt == DType::kF32) {
      f->read(t.name, reinterpret_cast<float*>(out.bytes.data()), t.shape);
    } else {
      // Through f32: f32 -> bf16/f16 rounds once; f16 <-> bf16 through f32 rounds once too (f32 holds either
      // exactly).
      std::vector<float> all(t.numel);
      f->read(t.name, all.data(), t.shape);
      auto* dst = reinterpret_cast<std::uint16_t*>(out.bytes.data());
      for (std::size_t i = 0; i < t.numel; ++i) {
        dst[i] = dt == DType::kBF16 ? float_to_bf16(all[i]) : float_to_f16(all[i]);
      }
    }
    f->drop(t.name);
    store.tensors.push_back(std::move(out));
  }
  return store;
}

}  // namespace zebra
