// Model hyper-parameters, the per-layer attention pattern, and their JSON form (config.json).
//
// Written (config_to_json) so that Hugging Face transformers reads the same model or refuses it (DESIGN.md §3):
//   - RoPE with local layers -> MinistralForCausalLM / "ministral": per-layer `layer_types` and `sliding_window`.
//     transformers' sliding mask (masking_utils.sliding_window_overlay) keeps key kv for query q when
//     kv > q - sliding_window (on top of causal kv <= q): q - window < kv <= q, zebra's own predicate
//     (ops/mask.hpp), so `sliding_window` is zebra's window unchanged.
//   - RoPE, every layer global -> LlamaForCausalLM / "llama".
//   - ALiBi, learned or no positions -> ZebraForCausalLM / "zebra", a model_type transformers does not know, so
//     AutoConfig refuses it instead of running it as a RoPE Llama.
//   zebra's own fields `group_size` and `pos_embedding` ride along; RoPE scaling is written in transformers'
//   `rope_scaling` form (static NTK, which transformers lacks, as the equivalent `rope_theta` plus zebra's own
//   `zebra_rope_scaling` that zebra reads back).
// Read (config_from_json): model_type "llama" (all layers global, as transformers runs it, unless zebra wrote
// it: then its layer_types count), "mistral" (`sliding_window` applies to every layer when set, null = none;
// layer_types ignored, as transformers does), "ministral" (layer_types, defaulting to all sliding when
// sliding_window is set), "zebra", or absent (zebra's own fields); the original Zebra release's keys
// (self_attn_type "mix", layer_group_size, window_size -> window = window_size + 1); `rope_scaling` (legacy
// "type" key accepted) or transformers 5's `rope_parameters`.
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
const char* to_string(RopeScaling s);  // transformers' rope_type names ("default" for none; zebra's "ntk")
PosEmbedding parse_pos_embedding(const std::string& s);  // throws naming the allowed values
RopeScaling parse_rope_scaling(const std::string& s);    // default|none, linear, ntk, dynamic, yarn

struct ModelConfig {
  std::int64_t vocab_size = 512;
  std::int64_t d_model = 64;        // hidden_size
  std::int64_t n_layers = 4;        // num_hidden_layers
  std::int64_t n_heads = 4;         // num_attention_heads
  std::int64_t n_kv_heads = 4;      // num_key_value_heads
  std::int64_t head_dim = 16;       // head_dim (defaults to d_model / n_heads when absent in JSON)
  std::int64_t ffn_dim = 172;       // intermediate_size
  std::int64_t max_seq_len = 2048;  // max_position_embeddings (size of the learned position table)
  double norm_eps = 1e-5;           // rms_norm_eps
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_scaling_factor = 1.0;
  // kYarn's pretraining length L0 (rope_scaling.original_max_position_embeddings; 0 = max_seq_len). kDynamic
  // takes max_seq_len as its L0, as transformers does.
  std::int64_t rope_original_max_positions = 0;
  double rope_beta_fast = 32.0;        // kYarn
  double rope_beta_slow = 1.0;         // kYarn
  double rope_attention_factor = 0.0;  // kYarn: multiplier of cos/sin; 0 = 0.1 ln(factor) + 1
  bool rope_truncate = true;           // kYarn: floor/ceil the correction range
  PosEmbedding pos_embedding = PosEmbedding::kRope;
  bool tie_embeddings = true;   // tie_word_embeddings
  std::int64_t group_size = 1;  // L: layer l is global when l % L == 0
  std::int64_t window = 256;    // sliding_window: keys i-window < j <= i
  // Per-layer types. Empty until resolve(); after resolve() it always has n_layers entries and
  // everything downstream reads it, never group_size.
  std::vector<LayerType> layer_types;
  std::int32_t bos_token_id = 1;
  std::int32_t eos_token_id = 2;

  // Fills layer_types from group_size when it was not given, then validates every field.
  // Throws zebra::Error naming the field, the value and what is allowed.
  void resolve();
  void validate() const;

  bool is_global(std::int64_t layer) const {
    return layer_types.at(static_cast<std::size_t>(layer)) == LayerType::kGlobal;
  }
  // The window a layer's attention uses: kGlobalWindow for global layers.
  std::int64_t layer_window(std::int64_t layer) const;
  std::int64_t q_dim() const { return n_heads * head_dim; }
  std::int64_t kv_dim() const { return n_kv_heads * head_dim; }
  std::int64_t num_global_layers() const;
  // The RoPE of this model (ops/rope.hpp).
  RopeParams rope_params() const;
  // The same model with every layer global (the "full-attention twin").
  ModelConfig full_attention_twin() const;
  // Re-lays the model as Zebra with group size L and the given window: layer l is global when
  // l % L == global_index (0, the first layer of each group, as the paper; layer_types recomputed).
  ModelConfig with_pattern(std::int64_t group_size, std::int64_t window, std::int64_t global_index = 0) const;
  // Re-lays the model with exactly `global_layers` global (indices in [0, n_layers), any order), the rest local
  // with `window`. Throws naming a bad or repeated index.
  ModelConfig with_global_layers(const std::vector<std::int64_t>& global_layers, std::int64_t window) const;
  std::string pattern_string() const;  // e.g. "GLLLGLLL"
};

// How a loaded model is re-laid and re-positioned before use (continued training with --init, evaluation,
// conversion). The parameters depend on none of it. Zero / empty fields keep the model's own value.
struct ModelAdjustment {
  std::int64_t group_size = 0;  // L; 1 = every layer global
  std::int64_t window = 0;
  std::int64_t global_index = 0;            // which layer of each group is global (0 = the first)
  std::vector<std::int64_t> global_layers;  // or exactly these layers global (then group_size is not used)
  double rope_theta = 0;                    // a new RoPE base
  bool set_rope_scaling = false;            // replace the model's scaling by rope_scaling / rope_factor
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_factor = 1.0;
  // kYarn's pretraining length L0; 0 = the model's max_seq_len before this adjustment.
  std::int64_t rope_original_length = 0;
  std::int64_t max_seq_len = 0;  // max_position_embeddings

  // Re-laid with group size L and a window, nothing else.
  static ModelAdjustment pattern(std::int64_t group_size, std::int64_t window) {
    ModelAdjustment a;
    a.group_size = group_size;
    a.window = window;
    return a;
  }
  bool changes_layout() const { return group_size > 0 || window > 0 || !global_layers.empty(); }
  bool empty() const {
    return !changes_layout() && global_index == 0 && rope_theta <= 0 && !set_rope_scaling && max_seq_len <= 0;
  }
};

// `config` with `adjustment` applied and resolved. A window alone re-lays the model's own groups; a model whose
// layers are all global needs a group size or a layer list too (refused naming the flags otherwise).
ModelConfig adjust_config(const ModelConfig& config, const ModelAdjustment& adjustment);
// A one-line description ("re-laid L=3 (global index 0), window 512; RoPE yarn x4 from 8192"), "" when empty.
std::string describe(const ModelAdjustment& adjustment);

// "rope (theta 100000, yarn x4 from 8192; max positions 32768)", "alibi", ...: what a report states.
std::string positions_string(const ModelConfig& c);

// How config_to_json writes a model (see the top of this file).
enum class ModelFamily { kLlama, kMinistral, kZebra };
ModelFamily model_family(const ModelConfig& c);

ModelConfig config_from_json(const nlohmann::json& j);
nlohmann::json config_to_json(const ModelConfig& c);
// RoPE of a forward pass over positions [0, seq_len) as JSON: {"rope_type", "inv_freq" [head_dim/2],
// "attention_factor", "cos" / "sin" [seq_len][head_dim/2] (float32, as the model uses them)}.
nlohmann::json rope_json(const ModelConfig& c, std::int64_t seq_len);
ModelConfig load_config(const std::string& path);  // config.json path (or a directory holding one)
void save_config(const ModelConfig& c, const std::string& path);

}  // namespace zebra
