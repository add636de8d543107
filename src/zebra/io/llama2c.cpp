#include "zebra/io/llama2c.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "zebra/io/rope_layout.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/mapped_file.hpp"

namespace zebra {

namespace {

constexpr std::uint32_t kMagic = 0x616b3432;  // "ak42" as a little-endian uint32
constexpr std::size_t kV0HeaderBytes = 7 * 4;
constexpr std::size_t kVersionedHeaderBytes = 256;
// Bound on every header dimension: the bound ModelConfig::validate applies. Products of two bounded
// dimensions fit 64 bits; the larger products (layers x matrix) go through checked_mul.
constexpr std::int64_t kMaxDim = std::int64_t{1} << 24;

std::uint64_t checked_mul(const std::string& path, std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("llama2.c file '", path, "': header dimensions overflow 64-bit sizes");
  return r;
}
std::uint64_t checked_add(const std::string& path, std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("llama2.c file '", path, "': header dimensions overflow 64-bit sizes");
  return r;
}

std::int32_t read_i32(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Element counts of the tensors in one layer and in the whole model, from a validated header.
struct Sizes {
  std::uint64_t D, F, L, V, hs, qd, kvd, seq;
  std::uint64_t embed() const { return V * D; }
  std::uint64_t wq() const { return qd * D; }
  std::uint64_t wk() const { return kvd * D; }
  std::uint64_t wo() const { return D * qd; }
  std::uint64_t w1() const { return F * D; }
};

Sizes sizes_of(const Llama2cHeader& h) {
  Sizes s;
  s.D = static_cast<std::uint64_t>(h.dim);
  s.F = static_cast<std::uint64_t>(h.hidden_dim);
  s.L = static_cast<std::uint64_t>(h.n_layers);
  s.V = static_cast<std::uint64_t>(h.vocab_size);
  s.hs = static_cast<std::uint64_t>(h.dim / h.n_heads);
  s.qd = s.D;
  s.kvd = static_cast<std::uint64_t>(h.n_kv_heads) * s.hs;
  s.seq = static_cast<std::uint64_t>(h.seq_len);
  return s;
}

// Validates the dimensions and computes the exact file size they imply.
void validate_header(const std::string& path, Llama2cHeader& h) {
  const std::string where = "llama2.c file '" + path + "' (version " + std::to_string(h.version) + ")";
  auto positive = [&](const char* field, std::int64_t v) {
    if (v <= 0 || v > kMaxDim) fail(where, ": header field ", field, " = ", v, ", expected 1..", kMaxDim);
  };
  positive("dim", h.dim);
  positive("hidden_dim", h.hidden_dim);
  positive("n_layers", h.n_layers);
  positive("n_heads", h.n_heads);
  positive("n_kv_heads", h.n_kv_heads);
  positive("vocab_size", h.vocab_size);
  positive("seq_len", h.seq_len);
  if (h.dim % h.n_heads != 0) fail(where, ": dim ", h.dim, " is not a multiple of n_heads ", h.n_heads);
  if (h.n_heads % h.n_kv_heads != 0) {
    fail(where, ": n_heads ", h.n_heads, " is not a multiple of n_kv_heads ", h.n_kv_heads);
  }
  if ((h.dim / h.n_heads) % 2 != 0)
    fail(where, ": head size dim / n_heads = ", h.dim / h.n_heads, " is odd (RoPE needs it even)");

  const Sizes s = sizes_of(h);
  auto mul = [&](std::uint64_t a, std::uint64_t b) { return checked_mul(path, a, b); };
  auto add = [&](std::uint64_t a, std::uint64_t b) { return checked_add(path, a, b); };
  // Per-layer matrices, all layers.
  const std::uint64_t layer_mats[] = {s.wq(), s.wk(), s.wk(), s.wo(), s.w1(), s.w1(), s.w1()};
  std::uint64_t bytes = h.version == 0 ? kV0HeaderBytes : kVersionedHeaderBytes;
  bytes = add(bytes, mul(4, add(mul(2, mul(s.L, s.D)), s.D)));  // rms_att, rms_ffn, rms_final
  if (h.version == 2) {
    if (h.group_size <= 0 || h.group_size > kMaxDim)
      fail(where, ": group_size = ", h.group_size, ", expected 1..", kMaxDim);
    const auto gs = static_cast<std::uint64_t>(h.group_size);
    auto quantized = [&](std::uint64_t numel, const char* what) {
      if (numel % gs != 0) fail(where, ": ", what, " has ", numel, " elements, not a multiple of group_size ", gs);
      return add(numel, mul(4, numel / gs));  // int8 values, then float32 scales
    };
    bytes = add(bytes, quantized(s.embed(), "token_embedding"));
    const char* names[] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    for (int i = 0; i < 7; ++i) bytes = add(bytes, mul(s.L, quantized(layer_mats[i], names[i])));
    if (!h.shared_classifier) bytes = add(bytes, quantized(s.embed(), "wcls"));
  } else {
    std::uint64_t floats = s.embed();
    for (std::uint64_t m : layer_mats) floats = add(floats, mul(s.L, m));
    if (h.version == 0) floats = add(floats, mul(s.seq, s.hs));  // freq_cis_real + freq_cis_imag
    if (!h.shared_classifier) floats = add(floats, s.embed());
    bytes = add(bytes, mul(4, floats));
  }
  h.expected_file_size = bytes;
}

Llama2cHeader parse_header(const MappedFile& file) {
  const std::string& path = file.path();
  const std::size_t size = file.size();
  const std::uint8_t* p = file.data();
  Llama2cHeader h;
  if (size >= 4) {
    std::uint32_t magic;
    std::memcpy(&magic, p, 4);
    if (magic == kMagic) {
      if (size < kVersionedHeaderBytes) {
        fail("llama2.c file '", path, "': ", size, " bytes, shorter than the ", kVersionedHeaderBytes,
             "-byte header of a versioned (\"ak42\") file");
      }
      h.version = read_i32(p + 4);
      if (h.version != 1 && h.version != 2) {
        fail("llama2.c file '", path, "': version ", h.version,
             " is not supported (expected 1: float32, or 2: int8 Q8_0)");
      }
      p += 8;
    }
  }
  if (h.version == 0 && size < kV0HeaderBytes) {
    fail("llama2.c file '", path, "': ", size, " bytes, shorter than the ", kV0HeaderBytes, "-byte version-0 header");
  }
  h.dim = read_i32(p);
  h.hidden_dim = read_i32(p + 4);
  h.n_layers = read_i32(p + 8);
  h.n_heads = read_i32(p + 12);
  h.n_kv_heads = read_i32(p + 16);
  h.vocab_size = read_i32(p + 20);
  h.seq_len = read_i32(p + 24);
  if (h.version == 0) {
    // The legacy format marks an unshared classifier with a negative vocab size.
    h.shared_classifier = h.vocab_size > 0;
    if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;  // int64: no overflow for INT32_MIN
  } else {
    const std::uint8_t flag = p[28];
    if (flag > 1) fail("llama2.c file '", path, "': shared_classifier byte is ", int{flag}, ", expected 0 or 1");
    h.shared_classifier = flag == 1;
    if (h.version == 2) h.group_size = read_i32(p + 29);
  }
  validate_header(path, h);
  if (size != h.expected_file_size) {
    fail("llama2.c file '", path, "' (version ", h.version, ", dim ", h.dim, ", hidden_dim ", h.hidden_dim,
         ", n_layers ", h.n_layers, ", n_heads ", h.n_heads, ", n_kv_heads ", h.n_kv_heads, ", vocab_size ",
         h.vocab_size, h.shared_classifier ? " shared" : " unshared", ", seq_len ", h.seq_len, "): expected ",
         h.expected_file_size, " bytes, found ", size,
         size < h.expected_file_size ? " (truncated)" : " (trailing data, or not this format)");
  }
  return h;
}

// Reads consecutive tensors out of the mapped file. Bounds were established by the size check; the
// cursor checks again so that a logic error cannot read past the mapping.
class Cursor {
 public:
  Cursor(const MappedFile& f, std::size_t offset) : path_(f.path()), p_(f.data() + offset), left_(f.size() - offset) {}
  void f32(float* out, std::uint64_t n) {
    take(n * 4);
    std::memcpy(out, p_ - n * 4, n * 4);
  }
  void skip(std::uint64_t bytes) { take(bytes); }
  // One Q8_0 tensor: int8 values [n], then float32 scales [n / gs].
  void q80(float* out, std::uint64_t n, std::uint64_t gs) {
    take(n + 4 * (n / gs));
    const auto* q = reinterpret_cast<const std::int8_t*>(p_ - n - 4 * (n / gs));
    const std::uint8_t* s = p_ - 4 * (n / gs);
    for (std::uint64_t g = 0; g < n / gs; ++g) {
      float scale;
      std::memcpy(&scale, s + 4 * g, 4);
      for (std::uint64_t i = 0; i < gs; ++i) out[g * gs + i] = static_cast<float>(q[g * gs + i]) * scale;
    }
  }
  std::size_t left() const { return left_; }

 private:
  void take(std::uint64_t bytes) {
    if (bytes > left_) fail("llama2.c file '", path_, "': internal error: read past the end");
    p_ += bytes;
    left_ -= bytes;
  }
  std::string path_;
  const std::uint8_t* p_;
  std::size_t left_;
};

}  // namespace

void permute_interleaved_to_half(float* w, std::int64_t n_heads, std::int64_t head_dim, std::int64_t cols) {
  permute_rows_interleaved_to_half(w, n_heads, head_dim, static_cast<std::size_t>(cols) * sizeof(float));
}

void permute_half_to_interleaved(float* w, std::int64_t n_heads, std::int64_t head_dim, std::int64_t cols) {
  permute_rows_half_to_interleaved(w, n_heads, head_dim, static_cast<std::size_t>(cols) * sizeof(float));
}

Llama2cHeader read_llama2c_header(const std::string& path) {
  MappedFile file(path);
  return parse_header(file);
}

ModelConfig llama2c_config(const Llama2cHeader& h, const std::optional<ModelAdjustment>& pattern) {
  ModelConfig c;
  c.vocab_size = h.vocab_size;
  c.d_model = h.dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.ffn_dim = h.hidden_dim;
  c.max_seq_len = h.seq_len;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.pos_embedding = PosEmbedding::kRope;
  c.tie_embeddings = h.shared_classifier;
  c.group_size = 1;
  c.layer_types.clear();
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.resolve();
  return apply_adjustment(c, pattern);
}

ParameterSet<float> load_llama2c(const std::string& path, const std::optional<ModelAdjustment>& pattern) {
  MappedFile file(path);
  const Llama2cHeader h = parse_header(file);
  ParameterSet<float> params(llama2c_config(h, pattern));
  const Sizes s = sizes_of(h);
  ParamViews<float>& v = params.views;
  const std::size_t L = static_cast<std::size_t>(h.n_layers);

  // Reads one tensor per layer, for the field selected by `field`.
  auto per_layer = [&](auto&& read_one, float* LayerWeights<float>::*field, std::uint64_t n) {
    for (std::size_t l = 0; l < L; ++l) read_one(v.layers[l].*field, n);
  };

  if (h.version == 0) {
    Cursor c(file, kV0HeaderBytes);
    auto f32 = [&](float* out, std::uint64_t n) { c.f32(out, n); };
    c.f32(v.embed, s.embed());
    per_layer(f32, &LayerWeights<float>::attn_norm, s.D);
    per_layer(f32, &LayerWeights<float>::wq, s.wq());
    per_layer(f32, &LayerWeights<float>::wk, s.wk());
    per_layer(f32, &LayerWeights<float>::wv, s.wk());
    per_layer(f32, &LayerWeights<float>::wo, s.wo());
    per_layer(f32, &LayerWeights<float>::ffn_norm, s.D);
    per_layer(f32, &LayerWeights<float>::w_gate, s.w1());  // w1
    per_layer(f32, &LayerWeights<float>::w_down, s.w1());  // w2
    per_layer(f32, &LayerWeights<float>::w_up, s.w1());    // w3
    c.f32(v.final_norm, s.D);
    c.skip(4 * s.seq * s.hs);  // freq_cis_real and freq_cis_imag, [seq_len, hs/2] each: zebra computes its own
    if (!h.shared_classifier) c.f32(v.lm_head, s.embed());
  } else {
    Cursor c(file, kVersionedHeaderBytes);
    auto f32 = [&](float* out, std::uint64_t n) { c.f32(out, n); };
    per_layer(f32, &LayerWeights<float>::attn_norm, s.D);
    per_layer(f32, &LayerWeights<float>::ffn_norm, s.D);
    c.f32(v.final_norm, s.D);
    const auto gs = static_cast<std::uint64_t>(h.group_size);
    auto mat = [&](float* out, std::uint64_t n) {
      if (h.version == 1) {
        c.f32(out, n);
      } else {
        c.q80(out, n, gs);
      }
    };
    mat(v.embed, s.embed());
    per_layer(mat, &LayerWeights<float>::wq, s.wq());
    per_layer(mat, &LayerWeights<float>::wk, s.wk());
    per_layer(mat, &LayerWeights<float>::wv, s.wk());
    per_layer(mat, &LayerWeights<float>::wo, s.wo());
    per_layer(mat, &LayerWeights<float>::w_gate, s.w1());  // w1
    per_layer(mat, &LayerWeights<float>::w_down, s.w1());  // w2
    per_layer(mat, &LayerWeights<float>::w_up, s.w1());    // w3
    if (!h.shared_classifier) mat(v.lm_head, s.embed());
  }

  const std::int64_t hs = params.config.head_dim;
  for (std::size_t l = 0; l < L; ++l) {
    permute_interleaved_to_half(v.layers[l].wq, h.n_heads, hs, h.dim);
    permute_interleaved_to_half(v.layers[l].wk, h.n_kv_heads, hs, h.dim);
  }
  return params;
}

void export_llama2c_v0(const std::string& path, const ParameterSet<float>& params) {
  const ModelConfig& c = params.config;
  const std::string where = "export llama2.c '" + path + "'";
  if (c.pos_embedding != PosEmbedding::kRope)
    fail(where, ": needs pos_embedding rope, found ", to_string(c.pos_embedding));
  if (c.head_dim * c.n_heads != c.d_model) {
    fail(where, ": needs head_dim * n_heads == hidden_size, found ", c.head_dim, " * ", c.n_heads, " != ", c.d_model);
  }
  if (c.rope_theta != 10000.0 || c.rope_scaling != RopeScaling::kNone || c.norm_eps != 1e-5) {
    fail(where, ": llama2.c fixes rope_theta 10000, no RoPE scaling and rms_norm_eps 1e-5; found rope_theta ",
         c.rope_theta, ", rope_scaling ", to_string(c.rope_scaling), ", rms_norm_eps ", c.norm_eps);
  }
  for (std::int64_t d : {c.vocab_size, c.d_model, c.ffn_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.max_seq_len}) {
    if (d > 0x7fffffff) fail(where, ": dimension ", d, " does not fit the int32 header");
  }
  const ParamViews<float>& v = params.views;
  const auto D = static_cast<std::size_t>(c.d_model), F = static_cast<std::size_t>(c.ffn_dim),
             V = static_cast<std::size_t>(c.vocab_size), hs = static_cast<std::size_t>(c.head_dim),
             qd = static_cast<std::size_t>(c.q_dim()), kvd = static_cast<std::size_t>(c.kv_dim()),
             seq = static_cast<std::size_t>(c.max_seq_len);

  std::vector<std::uint8_t> out;
  auto put_i32 = [&](std::int64_t x) {
    auto v32 = static_cast<std::int32_t>(x);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v32);
    out.insert(out.end(), b, b + 4);
  };
  auto put = [&](const float* p, std::size_t n) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n * sizeof(float));
  };
  put_i32(c.d_model);
  put_i32(c.ffn_dim);
  put_i32(c.n_layers);
  put_i32(c.n_heads);
  put_i32(c.n_kv_heads);
  put_i32(c.tie_embeddings ? c.vocab_size : -c.vocab_size);
  put_i32(c.max_seq_len);
  put(v.embed, V * D);
  for (const auto& w : v.layers) put(w.attn_norm, D);
  std::vector<float> tmp;
  auto put_permuted = [&](const float* w, std::int64_t heads, std::size_t rows) {
    tmp.assign(w, w + rows * D);
    permute_half_to_interleaved(tmp.data(), heads, c.head_dim, c.d_model);
    put(tmp.data(), tmp.size());
  };
  for (const auto& w : v.layers) put_permuted(w.wq, c.n_heads, qd);
  for (const auto& w : v.layers) put_permuted(w.wk, c.n_kv_heads, kvd);
  for (const auto& w : v.layers) put(w.wv, kvd * D);
  for (const auto& w : v.layers) put(w.wo, D * qd);
  for (const auto& w : v.layers) put(w.ffn_norm, D);
  for (const auto& w : v.layers) put(w.w_gate, F * D);
  for (const auto& w : v.layers) put(w.w_down, D * F);
  for (const auto& w : v.layers) put(w.w_up, F * D);
  put(v.final_norm, D);
  // freq_cis tables as llama2.c's model.py computes them (readers ignore them, but keep the format whole).
  std::vector<float> re(seq * (hs / 2)), im(re.size());
  for (std::size_t pos = 0; pos < seq; ++pos) {
    for (std::size_t k = 0; k < hs / 2; ++k) {
      const double freq = 1.0 / std::pow(10000.0, static_cast<double>(2 * k) / static_cast<double>(hs));
      const double angle = static_cast<double>(pos) * static_cast<double>(static_cast<float>(freq));
      re[pos * (hs / 2) + k] = static_cast<float>(std::cos(angle));
      im[pos * (hs / 2) + k] = static_cast<float>(std::sin(angle));
    }
  }
  put(re.data(), re.size());
  put(im.data(), im.size());
  if (!c.tie_embeddings) put(v.lm_head, V * D);
  write_file_atomic(path, std::span<const std::uint8_t>(out.data(), out.size()));
}

}  // namespace zebra
