// Hugging Face model directories (DESIGN.md §3): config.json + model.safetensors (or shards listed by
// model.safetensors.index.json) + an optional tokenizer file, with Hugging Face tensor names
// (ParamLayout in model/params.hpp).
//
// Conventions:
// - Hugging Face Llama checkpoints already store q_proj / k_proj in the rotate-half RoPE layout that
//   zebra uses, so they load without permutation.
// - Tied embeddings: a tied model is saved without lm_head.weight. On load, the config decides:
//   tie_word_embeddings true => lm_head.weight, if present, is ignored (as transformers does when it
//   re-ties after loading; a warning is logged when it differs from the embedding); false => it is
//   required. When config.json does not state tie_word_embeddings at all, the presence of
//   lm_head.weight decides (transformers' LlamaConfig defaults to untied, zebra's to tied).
// - Tensors the model does not use are an error, except known-harmless buffers (names ending in
//   "rotary_emb.inv_freq").
// - The layer pattern does not change the parameter layout, so a pattern override can re-lay any
//   checkpoint (for instance a plain Llama) as Zebra at load time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "zebra/data/tokenizer.hpp"
#include "zebra/io/safetensors.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/weights.hpp"

namespace zebra {

// Applies `adjustment` (when given) to `config`: adjust_config (model/config.hpp).
ModelConfig apply_adjustment(const ModelConfig& config, const std::optional<ModelAdjustment>& adjustment);

struct SaveModelOptions {
  DType dtype = DType::kF32;                    // dtype of model.safetensors
  const Tokenizer* tokenizer = nullptr;         // saved as tokenizer->file_name() when given
  std::string tokenizer_file;                   // or: a tokenizer file copied under its own file name
  std::map<std::string, std::string> metadata;  // extra safetensors __metadata__ ("format": "pt" is always set)
  // Called with the (temporary) directory after the model files are written, before the directory is
  // made durable and renamed: for callers that add files to the same atomic write (trainer state).
  std::function<void(const std::string& dir)> extra_files;
};

// Writes config.json, model.safetensors and the tokenizer into the existing directory `dir`, without
// any atomicity of its own: for callers composing a larger atomic directory write.
void write_model_files(const std::string& dir, const ParameterSet<float>& params, const SaveModelOptions& options = {});

// Saves a model directory atomically: everything is written into a temporary directory beside `dir`,
// fsynced and renamed; an existing `dir` is replaced only after the new one is complete.
void save_model_dir(const std::string& dir, const ParameterSet<float>& params, const SaveModelOptions& options = {});

struct LoadModelOptions {
  std::optional<ModelAdjustment> pattern;
};

// The config a model directory would load with (config.json plus the pattern override, and the tie
// decision described above). Cheap: reads the headers, not the weights.
ModelConfig load_model_dir_config(const std::string& dir, const LoadModelOptions& options = {});

// Loads a model directory. Checks that every expected tensor is present with the right shape and that
// no unexpected tensor is present; errors name the file, the tensor, the expected and the found shape.
ParameterSet<float> load_model_dir(const std::string& dir, const LoadModelOptions& options = {});

// Loads a model directory for inference, each matrix held as `matrix_dtype` (F32, BF16 or F16) or, when unset,
// in the 16-bit or 32-bit type it is stored in (F64 as F32); norms as F32. Same checks as load_model_dir. The
// file's pages are released tensor by tensor, so the peak memory is the loaded weights plus one tensor.
WeightStore load_model_dir_weights(const std::string& dir, const LoadModelOptions& options = {},
                                   std::optional<DType> matrix_dtype = std::nullopt);

// The tokenizer file of a model directory (tokenizer.model, then tokenizer.bin, then tokenizer.json), or "".
std::string find_tokenizer_file(const std::string& dir);

}  // namespace zebra
