#include "zebra/model/config.hpp"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "zebra/ops/mask.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

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
  }
  return "?";
}

PosEmbedding parse_pos_embedding(const std::string& s) {
  if (s == "rope") return PosEmbedding::kRope;
  if (s == "alibi") return PosEmbedding::kAlibi;
  if (s == "learned") return PosEmbedding::kLearned;
  if (s == "none") return PosEmbedding::kNone;
  fail("pos_embedding: got '", s, "', allowed: rope, alibi, learned, none");
}

namespace {

bool has(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

std::int64_t get_int(const json& j, const char* key, std::int64_t fallback) {
  if (!has(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number_integer()) fail("config field '", key, "': expected an integer, found ", v.dump());
  return v.get<std::int64_t>();
}

double get_double(const json& j, const char* key, double fallback) {
  if (!has(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number()) fail("config field '", key, "': expected a number, found ", v.dump());
  return v.get<double>();
}

bool get_bool(const json& j, const char* key, bool fallback) {
  if (!has(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_boolean()) fail("config field '", key, "': expected true or false, found ", v.dump());
  return v.get<bool>();
}

std::string get_string(const json& j, const char* key, const std::string& fallback) {
  if (!has(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_string()) fail("config field '", key, "': expected a string, found ", v.dump());
  return v.get<std::string>();
}

LayerType parse_layer_type(const json& v, std::size_t index) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "full_attention" || s == "global") return LayerType::kGlobal;
    if (s == "sliding_attention" || s == "local") return LayerType::kLocal;
  }
  fail("config field 'layer_types[", index, "]': got ", v.dump(),
       ", allowed: \"full_attention\", \"sliding_attention\"");
}

void require_positive(const char* field, std::int64_t v) {
  if (v <= 0) fail("config field '", field, "': got ", v, ", expected a positive integer");
}

}  // namespace

std::int64_t ModelConfig::layer_window(std::int64_t layer) const {
  return is_global(layer) ? kGlobalWindow : window;
}

std::int64_t ModelConfig::num_global_layers() const {
  std::int64_t n = 0;
  for (LayerType t : layer_types) n += t == LayerType::kGlobal;
  return n;
}

ModelConfig ModelConfig::full_attention_twin() const {
  ModelConfig c = *this;
  c.group_size = 1;
  c.layer_types.assign(static_cast<std::size_t>(n_layers), LayerType::kGlobal);
  return c;
}

ModelConfig ModelConfig::with_pattern(std::int64_t new_group_size, std::int64_t new_window) const {
  ModelConfig c = *this;
  c.group_size = new_group_size;
  c.window = new_window;
  c.layer_types.clear();
  c.resolve();
  return c;
}

std::string ModelConfig::pattern_string() const {
  std::string s;
  for (LayerType t : layer_types) s += t == LayerType::kGlobal ? 'G' : 'L';
  return s;
}

void ModelConfig::resolve() {
  if (group_size < 1) fail("config field 'group_size': got ", group_size, ", expected an integer >= 1");
  if (layer_types.empty() && n_layers > 0) {
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
  if (!(norm_eps > 0.0) || !std::isfinite(norm_eps)) fail("config field 'rms_norm_eps': got ", norm_eps, ", expected > 0");
  if (!(rope_theta > 0.0) || !std::isfinite(rope_theta)) fail("config field 'rope_theta': got ", rope_theta, ", expected > 0");
  if (!(rope_scaling_factor >= 1.0) || !std::isfinite(rope_scaling_factor)) {
    fail("config field 'rope_scaling.factor': got ", rope_scaling_factor, ", expected a number >= 1");
  }
  if (group_size < 1) fail("config field 'group_size': got ", group_size, ", expected an integer >= 1");
  if (window < 1) fail("config field 'sliding_window': got ", window, ", expected an integer >= 1 (keys i-window < j <= i)");
  if (static_cast<std::int64_t>(layer_types.size()) != n_layers) {
    fail("config field 'layer_types': got ", layer_types.size(), " entries, expected num_hidden_layers = ", n_layers);
  }
  // Sizes whose products must stay far from overflow when the parameter buffer is laid out.
  const std::int64_t kMaxDim = std::int64_t{1} << 24;
  for (auto [name, v] : {std::pair<const char*, std::int64_t>{"vocab_size", vocab_size}, {"hidden_size", d_model},
                         {"intermediate_size", ffn_dim}, {"head_dim", head_dim}, {"num_attention_heads", n_heads},
                         {"num_hidden_layers", n_layers}, {"max_position_embeddings", max_seq_len}}) {
    if (v > kMaxDim) fail("config field '", name, "': got ", v, ", expected at most ", kMaxDim);
  }
}

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
      fail("config field 'head_dim': absent, and hidden_size (", c.d_model, ") is not a multiple of num_attention_heads (",
           c.n_heads, ")");
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

  if (has(j, "rope_scaling")) {
    const json& rs = j.at("rope_scaling");
    if (!rs.is_object()) fail("config field 'rope_scaling': expected an object or null, found ", rs.dump());
    std::string type = has(rs, "rope_type") ? get_string(rs, "rope_type", "") : get_string(rs, "type", "default");
    if (type == "linear") {
      c.rope_scaling = RopeScaling::kLinear;
    } else if (type == "ntk") {
      c.rope_scaling = RopeScaling::kNtk;
    } else if (type != "default" && type != "none") {
      fail("config field 'rope_scaling.type': got '", type, "', allowed: linear, ntk (static NTK-aware), default");
    }
    c.rope_scaling_factor = get_double(rs, "factor", 1.0);
  }

  // Window and group size: zebra's own keys, or the original Zebra release's keys.
  c.group_size = get_int(j, "group_size", 1);
  c.window = get_int(j, "sliding_window", c.window);
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
      fail("config field 'self_attn_type': got '", type, "', allowed: \"mix\", \"full\"");
    }
  }
  if (has(j, "layer_types")) {
    const json& lt = j.at("layer_types");
    if (!lt.is_array()) fail("config field 'layer_types': expected an array, found ", lt.dump());
    for (std::size_t i = 0; i < lt.size(); ++i) c.layer_types.push_back(parse_layer_type(lt[i], i));
  }
  c.resolve();
  return c;
}

json config_to_json(const ModelConfig& c) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
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
  if (c.rope_scaling == RopeScaling::kNone) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {{"rope_type", to_string(c.rope_scaling)}, {"factor", c.rope_scaling_factor}};
  }
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["pos_embedding"] = to_string(c.pos_embedding);
  j["group_size"] = c.group_size;
  j["sliding_window"] = c.window;
  json types = json::array();
  for (LayerType t : c.layer_types) types.push_back(to_string(t));
  j["layer_types"] = types;
  return j;
}

ModelConfig load_config(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  std::string text = read_file(file);
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
