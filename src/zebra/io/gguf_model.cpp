#include "zebra/io/gguf_model.hpp"

#include <map>
#include <set>

#include "zebra/io/rope_layout.hpp"
#include "zebra/io/safetensors.hpp"  // shape_string
#include "zebra/model/params.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/log.hpp"

namespace zebra {

namespace {

constexpr std::int64_t kMaxDim = std::int64_t{1} << 24;  // the bound ModelConfig::validate applies

std::string where(const GgufFile& f) { return "GGUF file '" + f.path() + "'"; }

// A required size: an integer in [1, 2^24].
std::int64_t dimension(const GgufFile& f, const std::string& key) {
  const std::int64_t v = f.get_int(key);
  if (v < 1 || v > kMaxDim)
    fail(where(f), ": metadata key '", key, "' = ", v, ", expected an integer in [1, ", kMaxDim, "]");
  return v;
}

std::optional<std::int64_t> find_dimension(const GgufFile& f, const std::string& key) {
  if (!f.has(key)) return std::nullopt;
  return dimension(f, key);
}

void set_rope_scaling(const GgufFile& f, const std::string& p, ModelConfig& c) {
  const std::optional<std::string> type = f.find_string(p + "rope.scaling.type");
  double factor = f.find_float(p + "rope.scaling.factor").value_or(0.0);
  if (!type) {
    // Files older than rope.scaling.*: a linear factor alone.
    factor = f.find_float(p + "rope.scale_linear").value_or(1.0);
    if (factor != 1.0) {
      c.rope_scaling = RopeScaling::kLinear;
      c.rope_scaling_factor = factor;
    }
    return;
  }
  if (*type == "none") return;
  // llama files name linear scaling only; zebra's own (io/gguf_export.hpp) every scaling zebra has.
  const bool own = p == "zebra.";
  RopeScaling kind = RopeScaling::kLinear;
  if (own) {
    try {
      kind = parse_rope_scaling(*type);
    } catch (const Error&) {
      fail(where(f), ": metadata key '", p, "rope.scaling.type' = '", type->substr(0, 32),
           "' is not supported (supported: none, linear, ntk, dynamic, yarn)");
    }
  } else if (*type != "linear") {
    fail(where(f), ": metadata key '", p, "rope.scaling.type' = '", type->substr(0, 32),
         "' is not supported (supported: none, linear)");
  }
  if (factor == 0.0) factor = 1.0;  // llama.cpp's reading: 0 means unset
  if (!(factor >= 1.0)) {
    fail(where(f), ": metadata key '", p, "rope.scaling.factor' = ", factor, ", expected a number >= 1");
  }
  c.rope_scaling = own ? kind : factor == 1.0 ? RopeScaling::kNone : RopeScaling::kLinear;
  c.rope_scaling_factor = c.rope_scaling == RopeScaling::kNone ? 1.0 : factor;
  if (own) c.rope_original_max_positions = find_dimension(f, p + "rope.scaling.original_context_length").value_or(0);
}

void set_layer_pattern(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.layer_types.assign(static_cast<std::size_t>(c.n_layers), LayerType::kGlobal);
  const std::optional<std::int64_t> window = f.find_int(p + "attention.sliding_window");
  const std::string pattern_key = p + "attention.sliding_window_pattern";
  if (!window) {
    if (f.has(pattern_key))
      fail(where(f), ": metadata key '", pattern_key, "' is given without '", p, "attention.sliding_window'");
    return;
  }
  if (*window < 1 || *window > kMaxDim) {
    fail(where(f), ": metadata key '", p, "attention.sliding_window' = ", *window, ", expected an integer in [1, ",
         kMaxDim, "]");
  }
  c.window = *window;
  const GgufValue* pattern = f.find(pattern_key);
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    bool local = true;  // no pattern: every layer slides
    if (pattern != nullptr && pattern->type == GgufType::kArray) {
      if (pattern->elem_type != GgufType::kBool || pattern->count != static_cast<std::uint64_t>(c.n_layers)) {
        fail(where(f), ": metadata key '", pattern_key, "': expected an integer or array[bool] of ", c.n_layers,
             " entries (one per layer), found ", pattern->type_name(), " of ", pattern->count);
      }
      local = pattern->raw[static_cast<std::size_t>(l)] != 0;
    } else if (pattern != nullptr) {
      const std::int64_t n = f.get_int(pattern_key);
      if (n < 0) fail(where(f), ": metadata key '", pattern_key, "' = ", n, ", expected an integer >= 0");
      local = n == 0 || l % n < n - 1;
    }
    c.layer_types[static_cast<std::size_t>(l)] = local ? LayerType::kLocal : LayerType::kGlobal;
  }
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama" && arch != "zebra") {
    fail(where(f), ": architecture '", arch.substr(0, 64),
         "' (general.architecture) is not supported (supported: llama, zebra)");
  }
  const std::string p = arch + ".";
  ModelConfig c;
  c.pos_embedding = PosEmbedding::kRope;
  c.d_model = dimension(f, p + "embedding_length");
  c.n_layers = dimension(f, p + "block_count");
  c.ffn_dim = dimension(f, p + "feed_forward_length");
  c.n_heads = dimension(f, p + "attention.head_count");
  c.n_kv_heads = find_dimension(f, p + "attention.head_count_kv").value_or(c.n_heads);
  c.max_seq_len = dimension(f, p + "context_length");
  c.norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon");
  c.rope_theta = f.find_float(p + "rope.freq_base").value_or(10000.0);

  if (const auto kl = find_dimension(f, p + "attention.key_length")) {
    c.head_dim = *kl;
  } else {
    if (c.d_model % c.n_heads != 0) {
      fail(where(f), ": embedding_length ", c.d_model, " is not a multiple of attention.head_count ", c.n_heads,
           " and attention.key_length is absent");
    }
    c.head_dim = c.d_model / c.n_heads;
  }
  if (const auto vl = find_dimension(f, p + "attention.value_length"); vl && *vl != c.head_dim) {
    fail(where(f), ": attention.value_length ", *vl, " differs from the key length ", c.head_dim, " (not supported)");
  }
  if (const auto rd = find_dimension(f, p + "rope.dimension_count"); rd && *rd != c.head_dim) {
    fail(where(f), ": rope.dimension_count ", *rd, " differs from the head dimension ", c.head_dim,
         " (zebra applies RoPE to whole heads)");
  }

  const std::optional<std::int64_t> stated_vocab = find_dimension(f, p + "vocab_size");
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (tokens != nullptr && (tokens->type != GgufType::kArray || tokens->elem_type != GgufType::kString)) {
    fail(where(f), ": metadata key 'tokenizer.ggml.tokens': expected array[string], found ", tokens->type_name());
  }
  if (tokens != nullptr) {
    c.vocab_size = static_cast<std::int64_t>(tokens->count);
    if (stated_vocab && *stated_vocab != c.vocab_size) {
      fail(where(f), ": ", p, "vocab_size = ", *stated_vocab, " but tokenizer.ggml.tokens holds ", c.vocab_size,
           " tokens");
    }
  } else if (stated_vocab) {
    c.vocab_size = *stated_vocab;
  } else if (const GgufTensor* e = f.find_tensor("token_embd.weight"); e != nullptr && e->shape.size() == 2) {
    c.vocab_size = e->shape[0];
  } else {
    fail(where(f), ": no vocabulary size: neither tokenizer.ggml.tokens, ", p, "vocab_size nor token_embd.weight");
  }

  set_rope_scaling(f, p, c);
  set_layer_pattern(f, p, c);
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  for (auto [key, field] : {std::pair<const char*, std::int32_t*>{"tokenizer.ggml.bos_token_id", &c.bos_token_id},
                            {"tokenizer.ggml.eos_token_id", &c.eos_token_id}}) {
    const std::optional<std::int64_t> id = f.find_int(key);
    if (id && *id >= 0 && *id < c.vocab_size) *field = static_cast<std::int32_t>(*id);
  }
  try {
    c.resolve();
  } catch (const Error& e) {
    fail(where(f), ": the model it describes is invalid: ", e.what());
  }
  return c;
}

std::string gguf_tensor_name(const std::string& hf) {
  static const std::map<std::string, std::string> kTop = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                          {"model.norm.weight", "output_norm.weight"},
                                                          {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, std::string> kLayer = {
      {"input_layernorm.weight", "attn_norm.weight"},    {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},       {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  if (auto it = kTop.find(hf); it != kTop.end()) return it->second;
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) == 0) {
    const std::size_t dot = hf.find('.', prefix.size());
    if (dot != std::string::npos && dot > prefix.size()) {
      const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
      if (auto it = kLayer.find(hf.substr(dot + 1)); it != kLayer.end()) return "blk." + layer + "." + it->second;
    }
  }
  fail("tensor '", hf.substr(0, 80), "' has no GGUF counterpart");
}

WeightMatrix GgufModelTensor::matrix() const {
  const std::int64_t cols = shape.back();
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  return WeightMatrix{dtype, bytes().data(), rows, cols, dtype_row_bytes(dtype, cols)};
}

std::vector<GgufModelTensor> gguf_model_tensors(const GgufFile& f, const ModelConfig& config) {
  const ParamLayout layout = make_param_layout(config);
  std::set<std::string> used;
  std::vector<GgufModelTensor> out;
  out.reserve(layout.tensors.size());
  for (const TensorInfo& info : layout.tensors) {
    GgufModelTensor t;
    t.name = info.name;
    t.gguf_name = gguf_tensor_name(info.name);
    const GgufTensor* g = f.find_tensor(t.gguf_name);
    if (g == nullptr) fail(where(f), ": tensor '", t.gguf_name, "' (", info.name, ") is missing");
    if (g->shape != info.shape) {
      fail(where(f), ": tensor '", t.gguf_name, "': expected shape ", shape_string(info.shape), " (row-major), found ",
           shape_string(g->shape));
    }
    used.insert(t.gguf_name);
    t.dtype = g->dtype;
    t.shape = g->shape;
    t.borrowed = f.raw(*g);
    const bool is_q = t.gguf_name.ends_with(".attn_q.weight"), is_k = t.gguf_name.ends_with(".attn_k.weight");
    if (is_q || is_k) {
      t.permuted = true;
      t.owned.assign(t.borrowed.begin(), t.borrowed.end());
      permute_rows_interleaved_to_half(t.owned.data(), is_q ? config.n_heads : config.n_kv_heads, config.head_dim,
                                       dtype_row_bytes(t.dtype, t.shape.back()));
      t.borrowed = {};
    }
    out.push_back(std::move(t));
  }
  for (const GgufTensor& g : f.tensors()) {
    if (used.count(g.name) != 0) continue;
    const std::string name = g.name.substr(0, 80);
    if (g.name == "rope_freqs.weight") {
      fail(where(f), ": tensor 'rope_freqs.weight' (Llama 3 RoPE frequency factors) is not supported");
    }
    fail(where(f), ": tensor '", name, "' is not part of a llama model with this config (", config.n_layers,
         " layers)");
  }
  return out;
}

VocabData gguf_vocab(const GgufFile& f) {
  VocabData v;
  v.model = f.get_string("tokenizer.ggml.model");
  v.pre = f.find_string("tokenizer.ggml.pre").value_or("default");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const std::size_t n = v.tokens.size();
  if (n == 0) fail(where(f), ": metadata key 'tokenizer.ggml.tokens' is empty");
  if (n > static_cast<std::size_t>(kMaxDim)) {
    fail(where(f), ": metadata key 'tokenizer.ggml.tokens' holds ", n, " tokens, more than the limit of ", kMaxDim);
  }
  auto check_len = [&](const char* key, std::size_t len) {
    if (len != n) fail(where(f), ": metadata key '", key, "' has ", len, " entries, expected one per token (", n, ")");
  };
  if (f.has("tokenizer.ggml.scores")) {
    const std::vector<double> scores = f.get_float_array("tokenizer.ggml.scores");
    check_len("tokenizer.ggml.scores", scores.size());
    v.scores.assign(scores.begin(), scores.end());
  }
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<std::int64_t> types = f.get_int_array("tokenizer.ggml.token_type");
    check_len("tokenizer.ggml.token_type", types.size());
    v.token_types.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > static_cast<std::int64_t>(TokenType::kByte)) {
        fail(where(f), ": metadata key 'tokenizer.ggml.token_type': token ", i, " has type ", types[i],
             ", expected 0..6 (undefined, normal, unknown, control, user-defined, unused, byte)");
      }
      v.token_types.push_back(static_cast<std::int32_t>(types[i]));
    }
  }
  if (f.has("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");
  for (auto [key, field] : {std::pair<const char*, std::int32_t*>{"tokenizer.ggml.bos_token_id", &v.bos_id},
                            {"tokenizer.ggml.eos_token_id", &v.eos_id},
                            {"tokenizer.ggml.unknown_token_id", &v.unk_id},
                            {"tokenizer.ggml.padding_token_id", &v.pad_id}}) {
    const std::optional<std::int64_t> id = f.find_int(key);
    if (!id) continue;
    if (*id < 0 || *id >= static_cast<std::int64_t>(n)) {
      log_warn(where(f), ": metadata key '", key, "' = ", *id, " is outside the vocabulary (", n, " tokens): ignored");
      continue;
    }
    *field = static_cast<std::int32_t>(*id);
  }
  v.add_bos = f.find_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = f.find_bool("tokenizer.ggml.add_eos_token");
  v.add_space_prefix = f.find_bool("tokenizer.ggml.add_space_prefix");
  v.chat_template = f.find_string("tokenizer.chat_template").value_or("");
  return v;
}

}  // namespace zebra
