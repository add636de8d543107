// Loads a model for inference from whatever a user points at:
//   - a Hugging Face / zebra model directory (config.json + safetensors; a training checkpoint directory is
//     one too), through io/checkpoint_dir.hpp; its tokenizer is the directory's tokenizer file;
//   - a GGUF file (architecture llama; a regular file starting with the GGUF magic), through io/gguf_model.hpp;
//     its tokenizer comes from its own metadata. For inference its tensors stay in their stored types
//     (quantized blocks included) and borrow the file's mapping; for training they are dequantised to fp32;
//   - a llama2.c checkpoint (a `.bin` file, or any other regular file), through io/llama2c.hpp;
//     its tokenizer is `tokenizer.bin` beside it, or else the only `tok*.bin` beside it.
// An explicit tokenizer path overrides the search. A ModelAdjustment (model/config.hpp) re-lays the model as Zebra
// and adjusts its RoPE at load time: the parameters depend on neither.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "zebra/data/tokenizer.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/weights.hpp"

namespace zebra {

enum class ModelFormat { kModelDir, kLlama2c, kGguf };
const char* to_string(ModelFormat f);

struct LoadedModel {
  // Dense fp32 parameters (training, conversion), config resolved (layer pattern filled in); empty when the
  // model was loaded for inference into `store`.
  ParameterSet<float> params;
  std::optional<WeightStore> store;  // typed weights (load_model_for_inference)
  ModelFormat format = ModelFormat::kModelDir;
  std::string path;            // what was loaded
  std::string tokenizer_path;  // "" when none was found

  const ModelConfig& config() const { return store ? store->config : params.config; }
  // Views of whichever holds the weights (valid while this LoadedModel lives and is not moved... the views point
  // into heap buffers, so moving the LoadedModel keeps them valid; copying does not).
  ModelWeights<float> weights() const { return store ? weights_of(*store) : weights_of(params); }
};

// Throws with the path and what was expected when the path is missing or not a loadable model.
LoadedModel load_any_model(const std::string& path, const std::optional<ModelAdjustment>& pattern = std::nullopt,
                           const std::string& tokenizer_override = "");

// For inference: the weights once, in `matrix_dtype` (F32, BF16, F16) or as stored when unset (a model
// directory keeps its 16-bit matrices 16-bit), no gradients, no second copy.
LoadedModel load_model_for_inference(const std::string& path,
                                     const std::optional<ModelAdjustment>& pattern = std::nullopt,
                                     const std::string& tokenizer_override = "",
                                     std::optional<DType> matrix_dtype = std::nullopt);

// The config a model path would load with, without reading the weights.
ModelConfig peek_model_config(const std::string& path);

// Which tokenizer file goes with a model path (the search above); "" when none.
std::string find_model_tokenizer(const std::string& model_path);

// Loads the model's tokenizer; throws naming the model when it has none.
std::unique_ptr<Tokenizer> load_model_tokenizer(const LoadedModel& model);

// A tokenizer from a tokenizer file (tokenizer.model, tokenizer.bin, tokenizer.json) or from a model: a GGUF (its
// metadata vocabulary) or a model directory (the tokenizer file in it). Throws naming the path.
std::unique_ptr<Tokenizer> load_tokenizer_or_model(const std::string& path);

// For continued training: the file a checkpoint copies as the tokenizer of the model at `model_path`. A tokenizer
// file beside the model is returned as is; a GGUF's vocabulary is written to `out_dir` (tokenizer.json and
// tokenizer_config.json with BOS/EOS and the chat template) and that path returned. "" when the model has none.
std::string export_model_tokenizer(const std::string& model_path, const std::string& out_dir);

}  // namespace zebra
