#include "zebra/model/config.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "zebra/model/json_fields.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

using json = nlohmann::json;

const char* to_string(LayerType t) { return t == LayerType::kGlobal ? "full_attention" : "sliding_attention"; }

const char* to_string(PosEmbedding p) {
  switch (p) {
    case PosEmbedding::kRope: return "rope";
    case PosEmbedding::kAlibi: return "alibi";
    case PosEmbedding::kLearned: return "learned";
    case PosEmbedding::kNone: return "none";
  }
  return "?";
}

const char* to_string(RopeScaling s) {
  switch (s) {
    case RopeScaling::kNone: return "none";
    case RopeScaling::kLinear: return "linear";
    case RopeScaling::kNtk: return "ntk";
    case RopeScaling::kDynamic: return "dynamic";
    case RopeScaling::kYarn: return "yarn";
  }
  return "?";
}

RopeScaling parse_rope_scaling(const std::string& s) {
  if (s == "default" || s == "none") return RopeScaling::kNone;
  if (s == "linear") return RopeScaling::kLinear;
  if (s == "ntk") return RopeScaling::kNtk;
  if (s == "dynamic") return RopeScaling::kDynamic;
  if (s == "yarn") return RopeScaling::kYarn;
  fail("rope scaling: got '", json_fields::shown(s),
       "', allowed: default (none), linear, dynamic (dynamic NTK), yarn, ntk (zebra's static NTK-aware)");
}

PosEmbedding parse_pos_embedding(const std::string& s) {
  if (s == "rope") return PosEmbedding::kRope;
  if (s == "alibi") return PosEmbedding::kAlibi;
  if (s == "learned") return PosEmbedding::kLearned;
  if (s == "none") return PosEmbedding::kNone;
  fail("pos_embedding: got '", json_fields::shown(s), "', allowed: rope, alibi, learned, none");
}

namespace {

using json_fields::get_bool;
using json_fields::get_double;
using json_fields::get_int;
using json_fields::get_string;
using json_fields::has;

LayerType parse_layer_type(const json& v, std::size_t index) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "full_attention" || s == "global") return LayerType::kGlobal;
    if (s == "sliding_attention" || s == "local") return LayerType::kLocal;
  }
  fail("config field 'layer_types[", index, "]': got ", json_fields::shown(v),
       ", allowed: \"full_attention\", \"sliding_attention\"");
}

void require_positive(const char* field, std::int64_t v) {
  if (v <= 0) fail("config field '", field, "': got ", v, ", expected a positive integer");
}

// Sizes whose products must stay far from overflow when the parameter buffer is laid out.
constexpr std::int64_t kMaxDim = std::int64_t{1} << 24;

// Checked before a per-layer list is allocated from it.
void check_layer_count(std::int64_t n_layers) {
  require_positive("num_hidden_layers", n_layers);
  if (n_layers > kMaxDim) fail("config field 'num_hidden_layers': got ", n_layers, ", expected at most ", kMaxDim);
}

}  // namespace

std::int64_t ModelConfig::layer_window(std::int64_t layer) const { return is_global(layer) ? kGlobalWindow : window; }

std::int64_t ModelConfig::num_global_layers() const {
  std::int64_t n = 0;
  for (LayerType t : layer_types) n += t == LayerType::kGlobal;
  return n;
}

RopeParams ModelConfig::rope_params() const {
  RopeParams p;
  p.head_dim = head_dim;
  p.theta = rope_theta;
  p.scaling = rope_scaling;
  p.factor = rope_scaling_factor;
  if (rope_scaling == RopeScaling::kDynamic) p.original_max_positions = max_seq_len;
  if (rope_scaling == RopeScaling::kYarn) {
    p.original_max_positions = rope_original_max_positions > 0 ? rope_original_max_positions : max_seq_len;
  }
  p.beta_fast = rope_beta_fast;
  p.beta_slow = rope_beta_slow;
  p.attention_factor = rope_attention_factor;
  p.truncate = rope_truncate;
  return p;
}

ModelConfig ModelConfig::full_attention_twin() const {
  ModelConfig c = *this;
  c.group_size = 1;
  c.layer_types.assign(static_cast<std::size_t>(n_layers), LayerType::kGlobal);
  return c;
}

ModelConfig ModelConfig::with_pattern(std::int64_t new_group_size, std::int64_t new_window,
                                      std::int64_t global_index) const {
  if (new_group_size < 1) fail("group size: got ", new_group_size, ", expected an integer >= 1");
  if (global_index < 0 || global_index >= new_group_size) {
    fail("global layer index within a group: got ", global_index,
         ", expected 0 .. group size - 1 = ", new_group_size - 1);
  }
  ModelConfig c = *this;
  c.group_size = new_group_size;
  c.window = new_window;
  c.layer_types.clear();
  if (global_index != 0) {
    check_layer_count(n_layers);
    c.layer_types.resize(static_cast<std::size_t>(n_layers));
    for (std::int64_t l = 0; l < n_layers; ++l) {
      c.layer_types[static_cast<std::size_t>(l)] =
          l % new_group_size == global_index ? LayerType::kGlobal : LayerType::kLocal;
    }
  }
  c.resolve();
  return c;
}

ModelConfig ModelConfig::with_global_layers(const std::vector<std::int64_t>& global_layers,
                                            std::int64_t new_window) const {
  check_layer_count(n_layers);
  ModelConfig c = *this;
  c.window = new_window;
  c.layer_types.assign(static_cast<std::size_t>(n_layers), LayerType::kLocal);
  for (std::int64_t l : global_layers) {
    if (l < 0 || l >= n_layers) fail("global layer ", l, ": expected a layer index in 0 .. ", n_layers - 1);
    LayerType& t = c.layer_types[static_cast<std::size_t>(l)];
    if (t == LayerType::kGlobal) fail("global layer ", l, " is listed twice");
    t = LayerType::kGlobal;
  }
  // group_size records the spacing when the list is regular (l % L == 0), else 1 is not claimed: keep the
  // smallest L that reproduces it, or the layer count when none does (layer_types is what counts).
  c.group_size = n_layers;
  for (std::int64_t L = 1; L <= n_layers; ++L) {
    bool regular = true;
    for (std::int64_t l = 0; l < n_layers && regular; ++l) {
      regular = (l % L == 0) == (c.layer_types[static_cast<std::size_t>(l)] == LayerType::kGlobal);
    }
    if (regular) {
      c.group_size = L;
      break;
    }
  }
  c.resolve();
  return c;
}

ModelConfig adjust_config(const ModelConfig& config, const ModelAdjustment& a) {
  ModelConfig c = config;
  if (c.layer_types.empty()) c.resolve();
  const std::int64_t window = a.window > 0 ? a.window : c.window;
  if (!a.global_layers.empty()) {
    if (a.group_size > 0) fail("give either a group size or a list of global layers, not both");
    c = c.with_global_layers(a.global_layers, window);
  } else if (a.group_size > 0 || a.window > 0) {
    const std::int64_t group = a.group_size > 0 ? a.group_size : c.group_size;
    if (group == 1 && a.group_size <= 0) {
      fail("a window of ", a.window,
           " alone does not change a model whose layers are all global (group size 1): give a group size too");
    }
    c = c.with_pattern(group, window, a.global_index);
  } else if (a.global_index != 0) {
    c = c.with_pattern(c.group_size, window, a.global_index);
  }
  const std::int64_t pretrained_len = c.max_seq_len;
  if (a.max_seq_len > 0) c.max_seq_len = a.max_seq_len;
  if (a.rope_theta > 0) c.rope_theta = a.rope_theta;
  if (a.set_rope_scaling) {
    c.rope_scaling = a.rope_scaling;
    c.rope_scaling_factor = a.rope_scaling == RopeScaling::kNone ? 1.0 : a.rope_factor;
    c.rope_original_max_positions = 0;
    if (a.rope_scaling == RopeScaling::kYarn) {
      c.rope_original_max_positions = a.rope_original_length > 0 ? a.rope_original_length : pretrained_len;
    }
  }
  c.resolve();
  return c;
}

std::string positions_string(const ModelConfig& c) {
  if (c.pos_embedding != PosEmbedding::kRope) return to_string(c.pos_embedding);
  std::string s = str_cat("rope (theta ", c.rope_theta);
  if (c.rope_scaling != RopeScaling::kNone) {
    s.append(str_cat(", ", to_string(c.rope_scaling), " x", c.rope_scaling_factor));
    if (c.rope_scaling == RopeScaling::kYarn) s.append(str_cat(" from ", c.rope_params().original_max_positions));
  }
  s.append(str_cat("; max positions ", c.max_seq_len, ")"));
  return s;
}

std::string describe(const ModelAdjustment& a) {
  std::string s;
  auto add = [&](const std::string& part) {
    if (!s.empty()) s.append("; ");
    s.append(part);
  };
  if (!a.global_layers.empty()) {
    std::string list;
    for (std::int64_t l : a.global_layers) {
      if (!list.empty()) list.push_back(',');
      list.append(std::to_string(l));
    }
    add(str_cat("global layers ", list, a.window > 0 ? str_cat(", window ", a.window) : std::string()));
  } else if (a.changes_layout() || a.global_index != 0) {
    std::string p = "re-laid";
    if (a.group_size > 0) p += " L=" + std::to_string(a.group_size);
    if (a.global_index != 0) p += " (global index " + std::to_string(a.global_index) + ")";
    if (a.window > 0) p += ", window " + std::to_string(a.window);
    add(p);
  }
  if (a.rope_theta > 0) add(str_cat("RoPE theta ", a.rope_theta));
  if (a.set_rope_scaling) {
    add(a.rope_scaling == RopeScaling::kNone ? std::string("no RoPE scaling")
                                             : str_cat("RoPE ", to_string(a.rope_scaling), " x", a.rope_factor));
  }
  if (a.max_seq_len > 0) add("max positions " + std::to_string(a.max_seq_len));
  return s;
}

std::string ModelConfig::pattern_string() const {
  std::string s;
  for (LayerType t : layer_types) s += t == LayerType::kGlobal ? 'G' : 'L';
  return s;
}

void ModelConfig::resolve() {
  if (group_size < 1) fail("config field 'group_size': got ", group_size, ", expected an integer >= 1");
  if (layer_types.empty()) {
    check_layer_count(n_layers);
    layer_types.resize(static_cast<std::size_t>(n_layers));
    for (std::int64_t l = 0; l < n_layers; ++l) {
      layer_types[static_cast<std::size_t>(l)] = (l % group_size == 0) ? LayerType::kGlobal : LayerType::kLocal;
    }
  }
  validate();
}

void ModelConfig::validate() const {
  require_positive("vocab_size", vocab_size);
  require_positive("hidden_size", d_model);
  require_positive("num_hidden_layers", n_layers);
  require_positive("num_attention_heads", n_heads);
  require_positive("num_key_value_heads", n_kv_heads);
  require_positive("head_dim", head_dim);
  require_positive("intermediate_size", ffn_dim);
  require_positive("max_position_embeddings", max_seq_len);
  if (n_heads % n_kv_heads != 0) {
    fail("config field 'num_key_value_heads': got ", n_kv_heads, ", expected a divisor of num_attention_heads (",
         n_heads, ")");
  }
  if (pos_embedding == PosEmbedding::kRope && head_dim % 2 != 0) {
    fail("config field 'head_dim': got ", head_dim, ", expected an even number with pos_embedding rope");
  }
  if (!(norm_eps > 0.0) || !std::isfinite(norm_eps))
    fail("config field 'rms_norm_eps': got ", norm_eps, ", expected > 0");
  if (!(rope_theta > 0.0) || !std::isfinite(rope_theta))
    fail("config field 'rope_theta': got ", rope_theta, ", expected > 0");
  if (!(rope_scaling_factor >= 1.0) || !std::isfinite(rope_scaling_factor)) {
    fail("config field 'rope_scaling.factor': got ", rope_scaling_factor, ", expected a number >= 1");
  }
  if (rope_original_max_positions < 0) {
    fail("config field 'rope_scaling.original_max_position_embeddings': got ", rope_original_max_positions,
         ", expected a positive integer");
  }
  if (!(rope_beta_fast > 0.0) || !std::isfinite(rope_beta_fast) || !(rope_beta_slow > 0.0) ||
      !std::isfinite(rope_beta_slow)) {
    fail("config fields 'rope_scaling.beta_fast' / 'beta_slow': got ", rope_beta_fast, " / ", rope_beta_slow,
         ", expected numbers > 0");
  }
  if (!(rope_attention_factor >= 0.0) || !std::isfinite(rope_attention_factor)) {
    fail("config field 'rope_scaling.attention_factor': got ", rope_attention_factor, ", expected a number > 0");
  }
  if (group_size < 1) fail("config field 'group_size': got ", group_size, ", expected an integer >= 1");
  if (window < 1)
    fail("config field 'sliding_window': got ", window, ", expected an integer >= 1 (keys i-window < j <= i)");
  if (static_cast<std::int64_t>(layer_types.size()) != n_layers) {
    fail("config field 'layer_types': got ", layer_types.size(), " entries, expected num_hidden_layers = ", n_layers);
  }
  for (auto [name, v] : {std::pair<const char*, std::int64_t>{"vocab_size", vocab_size},
                         {"hidden_size", d_model},
                         {"intermediate_size", ffn_dim},
                         {"head_dim", head_dim},
                         {"num_attention_heads", n_heads},
                         {"num_hidden_layers", n_layers},
                         {"max_position_embeddings", max_seq_len}}) {
    if (v > kMaxDim) fail("config field '", name, "': got ", v, ", expected at most ", kMaxDim);
  }
}

namespace {

// Static NTK has no transformers rope_type: it is exported as the equivalent base and recorded here.
constexpr const char* kZebraRopeKey = "zebra_rope_scaling";

// Reads rope_theta and the scaling: zebra's own record first, then `rope_scaling` (transformers 4, and what
// zebra writes), then `rope_parameters` (transformers 5; its rope_theta wins over the top-level one there).
void read_rope(const json& j, ModelConfig& c) {
  c.rope_theta = get_double(j, "rope_theta", c.rope_theta);
  const char* key = has(j, kZebraRopeKey)       ? kZebraRopeKey
                    : has(j, "rope_scaling")    ? "rope_scaling"
                    : has(j, "rope_parameters") ? "rope_parameters"
                                                : nullptr;
  if (key == nullptr) return;
  const std::string prefix = std::string(key) + ".";
  const char* pre = prefix.c_str();
  const json& rs = j.at(key);
  if (!rs.is_object()) fail("config field '", key, "': expected an object or null, found ", json_fields::shown(rs));
  for (const char* layer_type : {"full_attention", "sliding_attention"}) {
    if (rs.contains(layer_type)) {
      fail("config field '", key, "': RoPE parameters per layer type ('", layer_type,
           "') are not supported, expected one set for every layer");
    }
  }
  c.rope_theta = get_double(rs, "rope_theta", c.rope_theta, pre);
  const char* type_key = has(rs, "rope_type") ? "rope_type" : "type";
  const std::string type = get_string(rs, type_key, "default", pre);
  try {
    c.rope_scaling = parse_rope_scaling(type);
  } catch (const Error& e) {
    fail("config field '", prefix, type_key, "': ", e.what());
  }
  if (const double partial = get_double(rs, "partial_rotary_factor", 1.0, pre); partial != 1.0) {
    fail("config field '", prefix, "partial_rotary_factor': got ", partial, ", expected 1 (RoPE over the whole head)");
  }
  if (c.rope_scaling == RopeScaling::kNone) {
    c.rope_scaling_factor = 1.0;
    return;
  }
  if (c.rope_scaling == RopeScaling::kYarn) {
    // transformers: original_max_position_embeddings from the scaling, else a top-level field of that name
    // (Phi-3), else max_position_embeddings; a missing factor is max_position_embeddings / that length.
    c.rope_original_max_positions =
        get_int(rs, "original_max_position_embeddings", get_int(j, "original_max_position_embeddings", 0), pre);
    if (c.rope_original_max_positions < 0) {
      fail("config field '", prefix, "original_max_position_embeddings': got ", c.rope_original_max_positions,
           ", expected a positive integer");
    }
    const std::int64_t l0 = c.rope_original_max_positions > 0 ? c.rope_original_max_positions : c.max_seq_len;
    c.rope_scaling_factor = get_double(rs, "factor", static_cast<double>(c.max_seq_len) / static_cast<double>(l0), pre);
    // `or 32` / `or 1` in transformers: 0 takes the default too.
    c.rope_beta_fast = get_double(rs, "beta_fast", 0.0, pre);
    if (c.rope_beta_fast == 0.0) c.rope_beta_fast = 32.0;
    c.rope_beta_slow = get_double(rs, "beta_slow", 0.0, pre);
    if (c.rope_beta_slow == 0.0) c.rope_beta_slow = 1.0;
    c.rope_truncate = get_bool(rs, "truncate", true, pre);
    c.rope_attention_factor = get_double(rs, "attention_factor", 0.0, pre);
    const double mscale = get_double(rs, "mscale", 0.0, pre), mscale_all = get_double(rs, "mscale_all_dim", 0.0, pre);
    if (!has(rs, "attention_factor") && mscale != 0.0 && mscale_all != 0.0 && c.rope_scaling_factor > 1.0) {
      // DeepSeek's form: (0.1 mscale ln f + 1) / (0.1 mscale_all_dim ln f + 1).
      const double lf = std::log(c.rope_scaling_factor);
      c.rope_attention_factor = (0.1 * mscale * lf + 1.0) / (0.1 * mscale_all * lf + 1.0);
    }
    return;
  }
  if (!has(rs, "factor")) fail("config field '", prefix, "factor': missing, required with rope_type '", type, "'");
  c.rope_scaling_factor = get_double(rs, "factor", 1.0, pre);
}

std::vector<LayerType> read_layer_types(const json& j) {
  const json& lt = j.at("layer_types");
  if (!lt.is_array()) fail("config field 'layer_types': expected an array, found ", json_fields::shown(lt));
  std::vector<LayerType> types;
  for (std::size_t i = 0; i < lt.size(); ++i) types.push_back(parse_layer_type(lt[i], i));
  return types;
}

// The layer pattern and window, as the program that wrote the config means them (see config.hpp).
void read_pattern(const json& j, ModelConfig& c) {
  const std::string model_type = get_string(j, "model_type", "");
  if (!model_type.empty() && model_type != "llama" && model_type != "mistral" && model_type != "ministral" &&
      model_type != "zebra") {
    fail("config field 'model_type': got '", json_fields::shown(model_type),
         "', zebra reads \"llama\", \"mistral\", \"ministral\" and \"zebra\" (Llama-family decoders)");
  }
  const bool written_by_zebra = has(j, "group_size") || has(j, "pos_embedding") || has(j, "self_attn_type");
  c.group_size = get_int(j, "group_size", 1);
  c.window = get_int(j, "sliding_window", get_int(j, "zebra_window", c.window));
  const bool has_window = has(j, "sliding_window");
  const auto all = [&](LayerType t) {
    check_layer_count(c.n_layers);
    c.layer_types.assign(static_cast<std::size_t>(c.n_layers), t);
  };
  if (model_type == "mistral") {
    // MistralConfig has no layer_types (transformers warns and ignores them): the window is every layer's.
    all(has_window ? LayerType::kLocal : LayerType::kGlobal);
    return;
  }
  if (model_type == "ministral") {
    if (has(j, "layer_types")) {
      c.layer_types = read_layer_types(j);
    } else {
      all(has_window ? LayerType::kLocal : LayerType::kGlobal);
    }
    if (!has_window &&
        std::find(c.layer_types.begin(), c.layer_types.end(), LayerType::kLocal) != c.layer_types.end()) {
      fail("config field 'sliding_window': null, but layer_types has \"sliding_attention\" layers (expected a window)");
    }
    return;
  }
  if (model_type == "llama" && !written_by_zebra) {
    // LlamaForCausalLM runs every layer as full attention, whatever else the config says.
    all(LayerType::kGlobal);
    return;
  }
  if (has(j, "self_attn_type")) {
    std::string type = get_string(j, "self_attn_type", "");
    if (type == "mix") {
      c.group_size = get_int(j, "layer_group_size", 0);
      if (c.group_size < 1) fail("config field 'layer_group_size': got ", c.group_size, ", expected an integer >= 1");
      if (!has(j, "window_size")) fail("config field 'window_size': missing, required with self_attn_type \"mix\"");
      std::int64_t w = get_int(j, "window_size", 0);
      if (w < 0) fail("config field 'window_size': got ", w, ", expected an integer >= 0");
      c.window = w + 1;  // the original sees keys i-w..i: w+1 positions
    } else if (type == "full") {
      c.group_size = 1;
    } else {
      fail("config field 'self_attn_type': got '", json_fields::shown(type), "', allowed: \"mix\", \"full\"");
    }
  }
  if (has(j, "layer_types")) c.layer_types = read_layer_types(j);
}

}  // namespace

ModelConfig config_from_json(const json& j) {
  if (!j.is_object()) fail("config: expected a JSON object, found ", j.type_name());
  ModelConfig c;
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size);
  c.d_model = get_int(j, "hidden_size", c.d_model);
  c.n_layers = get_int(j, "num_hidden_layers", c.n_layers);
  c.n_heads = get_int(j, "num_attention_heads", c.n_heads);
  c.n_kv_heads = get_int(j, "num_key_value_heads", c.n_heads);
  if (has(j, "head_dim")) {
    c.head_dim = get_int(j, "head_dim", 0);
  } else {
    if (c.n_heads <= 0) require_positive("num_attention_heads", c.n_heads);
    if (c.d_model % c.n_heads != 0) {
      fail("config field 'head_dim': absent, and hidden_size (", c.d_model,
           ") is not a multiple of num_attention_heads (", c.n_heads, ")");
    }
    c.head_dim = c.d_model / c.n_heads;
  }
  c.ffn_dim = get_int(j, "intermediate_size", c.ffn_dim);
  c.max_seq_len = get_int(j, "max_position_embeddings", c.max_seq_len);
  c.norm_eps = get_double(j, "rms_norm_eps", c.norm_eps);
  c.rope_theta = get_double(j, "rope_theta", c.rope_theta);
  c.tie_embeddings = get_bool(j, "tie_word_embeddings", c.tie_embeddings);
  c.bos_token_id = static_cast<std::int32_t>(get_int(j, "bos_token_id", c.bos_token_id));
  c.eos_token_id = static_cast<std::int32_t>(get_int(j, "eos_token_id", c.eos_token_id));
  c.pos_embedding = parse_pos_embedding(get_string(j, "pos_embedding", "rope"));

  read_rope(j, c);

  read_pattern(j, c);
  c.resolve();
  return c;
}

ModelFamily model_family(const ModelConfig& c) {
  if (c.pos_embedding != PosEmbedding::kRope) return ModelFamily::kZebra;
  return c.num_global_layers() == c.n_layers ? ModelFamily::kLlama : ModelFamily::kMinistral;
}

json config_to_json(const ModelConfig& c) {
  json j;
  const ModelFamily family = model_family(c);
  switch (family) {
    case ModelFamily::kLlama:
      j["architectures"] = {"LlamaForCausalLM"};
      j["model_type"] = "llama";
      j["attention_bias"] = false;
      j["mlp_bias"] = false;
      break;
    case ModelFamily::kMinistral:
      j["architectures"] = {"MinistralForCausalLM"};
      j["model_type"] = "ministral";
      break;
    case ModelFamily::kZebra:
      j["architectures"] = {"ZebraForCausalLM"};
      j["model_type"] = "zebra";
      break;
  }
  j["hidden_act"] = "silu";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.ffn_dim;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  switch (c.rope_scaling) {
    case RopeScaling::kNone: j["rope_scaling"] = nullptr; break;
    case RopeScaling::kNtk:
      // The same frequencies as a plain RoPE with the raised base, which transformers reads.
      j["rope_theta"] = rope_base(c.rope_params(), 0);
      j["rope_scaling"] = nullptr;
      j[kZebraRopeKey] = {{"rope_type", "ntk"}, {"factor", c.rope_scaling_factor}, {"rope_theta", c.rope_theta}};
      break;
    case RopeScaling::kLinear:
    case RopeScaling::kDynamic:
      j["rope_scaling"] = {{"rope_type", to_string(c.rope_scaling)}, {"factor", c.rope_scaling_factor}};
      break;
    case RopeScaling::kYarn: {
      json rs = {{"rope_type", "yarn"},
                 {"factor", c.rope_scaling_factor},
                 {"original_max_position_embeddings", c.rope_params().original_max_positions},
                 {"beta_fast", c.rope_beta_fast},
                 {"beta_slow", c.rope_beta_slow},
                 {"truncate", c.rope_truncate}};
      if (c.rope_attention_factor > 0.0) rs["attention_factor"] = c.rope_attention_factor;
      j["rope_scaling"] = rs;
      break;
    }
  }
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["pos_embedding"] = to_string(c.pos_embedding);
  j["group_size"] = c.group_size;
  if (family == ModelFamily::kLlama) {
    // No sliding_window key in a Llama config (some readers apply one wherever they find it); zebra keeps the
    // window it would re-lay the model with.
    j["zebra_window"] = c.window;
  } else {
    j["sliding_window"] = c.window;
    json types = json::array();
    for (LayerType t : c.layer_types) types.push_back(to_string(t));
    j["layer_types"] = types;
  }
  return j;
}

json rope_json(const ModelConfig& c, std::int64_t seq_len) {
  const RopeParams p = c.rope_params();
  const RopeTable<float> t = make_rope_table<float>(p, seq_len, rope_table_basis(p, seq_len));
  json cos = json::array(), sin = json::array();
  for (std::int64_t pos = 0; pos < seq_len; ++pos) {
    const auto row = [&](const std::vector<float>& v) {
      return std::vector<float>(v.begin() + pos * t.half, v.begin() + (pos + 1) * t.half);
    };
    cos.push_back(row(t.cos));
    sin.push_back(row(t.sin));
  }
  return {{"rope_type", to_string(c.rope_scaling)},
          {"inv_freq", rope_inv_freq(p, seq_len)},
          {"attention_factor", rope_attention_factor(p)},
          {"cos", cos},
          {"sin", sin}};
}

ModelConfig load_config(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  std::string text = read_file(file);
  check_json_depth(text, "'" + file + "'");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("'", file, "': not valid JSON (expected a config object)");
  try {
    return config_from_json(j);
  } catch (const Error& e) {
    fail("'", file, "': ", e.what());
  }
}

void save_config(const ModelConfig& c, const std::string& path) {
  write_file_atomic(path, config_to_json(c).dump(2) + "\n");
}

}  // namespace zebra
