// Model hyper-parameters, the per-layer attention pattern, and their JSON form
// (Hugging Face LlamaConfig names plus zebra's own; original Zebra keys are accepted on load).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "zebra/ops/rope.hpp"

namespace zebra {

enum class LayerType { kGlobal, kLocal };  // JSON: "full_attention" / "sliding_attention"
enum class PosEmbedding { kRope, kAlibi, kLearned, kNone };

const char* to_string(LayerType t);
const char* to_string(PosEmbedding p);
const char* to_string(RopeScaling s);
PosEmbedding parse_pos_embedding(const std::string& s);  // throws naming the allowed values

struct ModelConfig {
  std::int64_t vocab_size = 512;
  std::int64_t d_model = 64;       // hidden_size
  std::int64_t n_layers = 4;       // num_hidden_layers
  std::int64_t n_heads = 4;        // num_attention_heads
  std::int64_t n_kv_heads = 4;     // num_key_value_heads
  std::int64_t head_dim = 16;      // head_dim (defaults to d_model / n_heads when absent in JSON)
  std::int64_t ffn_dim = 172;      // intermediate_size
  std::int64_t max_seq_len = 2048; // max_position_embeddings (size of the learned position table)
  double norm_eps = 1e-5;          // rms_norm_eps
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_scaling_factor = 1.0;
  PosEmbedding pos_embedding = PosEmbedding::kRope;
  bool tie_embeddings = true;      // tie_word_embeddings
  std::int64_t group_size = 1;     // L: layer l is global when l % L == 0
  std::int64_t window = 256;       // sliding_window: keys i-window < j <= i
  // Per-layer types. Empty until resolve(); after resolve() it always has n_layers entries and
  // everything downstream reads it, never group_size.
  std::vector<LayerType> layer_types;
  std::int32_t bos_token_id = 1;
  std::int32_t eos_token_id = 2;

  // Fills layer_types from group_size when it was not given, then validates every field.
  // Throws zebra::Error naming the field, the value and what is allowed.
  void resolve();
  void validate() const;

  bool is_global(std::int64_t layer) const { return layer_types.at(static_cast<std::size_t>(layer)) == LayerType::kGlobal; }
  // The window a layer's attention uses: kGlobalWindow for global layers.
  std::int64_t layer_window(std::int64_t layer) const;
  std::int64_t q_dim() const { return n_heads * head_dim; }
  std::int64_t kv_dim() const { return n_kv_heads * head_dim; }
  std::int64_t num_global_layers() const;
  // The same model with every layer global (the "full-attention twin").
  ModelConfig full_attention_twin() const;
  // Re-lays the model as Zebra with group size L and the given window (layer_types recomputed).
  ModelConfig with_pattern(std::int64_t group_size, std::int64_t window) const;
  std::string pattern_string() const;  // e.g. "GLLLGLLL"
};

ModelConfig config_from_json(const nlohmann::json& j);
nlohmann::json config_to_json(const ModelConfig& c);
ModelConfig load_config(const std::string& path);  // config.json path (or a directory holding one)
void save_config(const ModelConfig& c, const std::string& path);

}  // namespace zebra
