// What a model loader needs from a GGUF file of architecture `llama` (or zebra's own `zebra`, the same keys
// under "zebra." with every RoPE scaling: io/gguf_export.hpp), as plain data: the config, the
// tensors under their Hugging Face names (model/params.hpp) with their stored dtype and bytes, and the
// tokenizer vocabulary (data/vocab.hpp).
//
// Metadata read (prefix "llama."): context_length, embedding_length, block_count, feed_forward_length,
// attention.head_count, attention.head_count_kv, attention.key_length / value_length, rope.freq_base,
// rope.dimension_count (must equal head_dim: zebra rotates whole heads), attention.layer_norm_rms_epsilon,
// vocab_size, rope.scaling.type / rope.scaling.factor (or the older rope.scale_linear),
// attention.sliding_window with attention.sliding_window_pattern (llama.cpp's meaning: an integer n makes
// layer l local when l % n < n - 1, n = 0 every layer; an array of bools marks the local layers; without
// a pattern every layer is local, as a Hugging Face Mistral config with sliding_window). The window
// counts the query's own position (llama.cpp n_swa), as zebra's does.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "zebra/data/vocab.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/weight.hpp"

namespace zebra {

// The config of a `llama` / `zebra` GGUF, resolved (layer_types filled); tie_embeddings when output.weight is
// absent. Any other general.architecture is refused, naming it. Throws naming the file and the key.
ModelConfig gguf_model_config(const GgufFile& file);

struct GgufModelTensor {
  std::string name;       // Hugging Face name: model.layers.3.self_attn.q_proj.weight, ...
  std::string gguf_name;  // blk.3.attn_q.weight, ...
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // row-major: [rows, cols] (Linear [out, in]) or [n] for norms
  // Q and K projections are stored interleaved per head in GGUF; their rows are permuted back to the
  // rotate-half layout into `owned`. Every other tensor borrows the GgufFile's mapping.
  bool permuted = false;
  std::span<const std::uint8_t> borrowed;
  std::vector<std::uint8_t> owned;

  std::span<const std::uint8_t> bytes() const { return permuted ? std::span<const std::uint8_t>(owned) : borrowed; }
  // [rows, cols] view of bytes() (a 1-D tensor is one row). Valid while this object (and the file) live.
  WeightMatrix matrix() const;
};

// Every tensor of the model, in the order of make_param_layout(config) (lm_head only when untied). The
// GGUF must hold exactly the tensors the config implies, each with the shape model/params.hpp gives it;
// a missing, extra or misshapen tensor is refused naming it.
std::vector<GgufModelTensor> gguf_model_tensors(const GgufFile& file, const ModelConfig& config);

// The GGUF name of a Hugging Face tensor name of model/params.hpp ("model.norm.weight" ->
// "output_norm.weight"); throws for a name with no GGUF counterpart.
std::string gguf_tensor_name(const std::string& hf_name);

// The vocabulary from tokenizer.ggml.* (model, pre, tokens, scores, token_type, merges, bos/eos/unknown/
// padding_token_id, add_bos_token, add_eos_token, add_space_prefix) and tokenizer.chat_template.
// Arrays must have one entry per token and token types be llama.cpp's (0..6); a special-token id outside
// the vocabulary is dropped with a warning, as llama.cpp does.
VocabData gguf_vocab(const GgufFile& file);

}  // namespace zebra
