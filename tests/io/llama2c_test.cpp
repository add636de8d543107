#include "zebra/io/llama2c.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/io_test_util.hpp"
#include "test_paths.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::expect_error;
using test::TempDir;

// ---------------------------------------------------------------------------------------------
// The RoPE permutation keeps q·k after RoPE unchanged.

// llama2.c's RoPE, written out here independently: pairs (2k, 2k+1) of each head rotate by
// pos * theta^(-2k/hs). v: [n_heads * hs].
void rope_interleaved(std::vector<double>& v, std::int64_t n_heads, std::int64_t hs, std::int64_t pos) {
  for (std::int64_t h = 0; h < n_heads; ++h) {
    for (std::int64_t k = 0; k < hs / 2; ++k) {
      const double angle =
          static_cast<double>(pos) * std::pow(10000.0, -2.0 * static_cast<double>(k) / static_cast<double>(hs));
      double& a = v[static_cast<std::size_t>(h * hs + 2 * k)];
      double& b = v[static_cast<std::size_t>(h * hs + 2 * k + 1)];
      const double a0 = a, b0 = b;
      a = a0 * std::cos(angle) - b0 * std::sin(angle);
      b = a0 * std::sin(angle) + b0 * std::cos(angle);
    }
  }
}

// y[rows] = W[rows, cols] · x[cols]
template <typename T>
std::vector<T> matvec(const std::vector<float>& w, const std::vector<float>& x, std::size_t rows) {
  const std::size_t cols = x.size();
  std::vector<T> y(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::size_t c = 0; c < cols; ++c) s += static_cast<double>(w[r * cols + c]) * x[c];
    y[r] = static_cast<T>(s);
  }
  return y;
}

TEST(Llama2cRope, PermutationKeepsAttentionScores) {
  const std::int64_t hs = 8, n_heads = 2, n_kv_heads = 1, cols = 6;
  Rng rng(5);
  auto randv = [&](std::size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(rng.normal());
    return v;
  };
  const std::vector<float> wq = randv(n_heads * hs * cols), wk = randv(n_kv_heads * hs * cols);
  std::vector<float> wq_p = wq, wk_p = wk;
  permute_interleaved_to_half(wq_p.data(), n_heads, hs, cols);
  permute_interleaved_to_half(wk_p.data(), n_kv_heads, hs, cols);
  // The permutation is the documented one, and the inverse undoes it.
  for (std::int64_t h = 0; h < n_heads; ++h) {
    for (std::int64_t k = 0; k < hs / 2; ++k) {
      for (std::int64_t c = 0; c < cols; ++c) {
        EXPECT_EQ(wq_p[(h * hs + k) * cols + c], wq[(h * hs + 2 * k) * cols + c]);
        EXPECT_EQ(wq_p[(h * hs + hs / 2 + k) * cols + c], wq[(h * hs + 2 * k + 1) * cols + c]);
      }
    }
  }
  std::vector<float> back = wq_p;
  permute_half_to_interleaved(back.data(), n_heads, hs, cols);
  EXPECT_EQ(back, wq);

  const RopeTable<float> table = make_rope_table<float>(RopeParams{hs, 10000.0, RopeScaling::kNone, 1.0}, 64);
  double worst_unpermuted = 0;
  for (auto [p1, p2] : {std::pair{0, 0}, {3, 11}, {17, 5}, {40, 63}}) {
    const std::vector<float> x = randv(cols), y = randv(cols);
    // Reference: original rows, interleaved RoPE.
    std::vector<double> q = matvec<double>(wq, x, n_heads * hs), k = matvec<double>(wk, y, n_kv_heads * hs);
    rope_interleaved(q, n_heads, hs, p1);
    rope_interleaved(k, n_kv_heads, hs, p2);
    // zebra: permuted rows, rotate-half RoPE (rope_forward).
    std::vector<float> qz = matvec<float>(wq_p, x, n_heads * hs), kz = matvec<float>(wk_p, y, n_kv_heads * hs);
    std::vector<float> qu = matvec<float>(wq, x, n_heads * hs), ku = matvec<float>(wk, y, n_kv_heads * hs);
    const std::int32_t pos1 = p1, pos2 = p2;
    rope_forward(qz.data(), &pos1, table, 1, n_heads, n_heads * hs);
    rope_forward(kz.data(), &pos2, table, 1, n_kv_heads, n_kv_heads * hs);
    rope_forward(qu.data(), &pos1, table, 1, n_heads, n_heads * hs);
    rope_forward(ku.data(), &pos2, table, 1, n_kv_heads, n_kv_heads * hs);
    for (std::int64_t h = 0; h < n_heads; ++h) {
      const std::int64_t kv = h / (n_heads / n_kv_heads);
      double ref = 0, got = 0, unpermuted = 0, scale = 0;
      for (std::int64_t d = 0; d < hs; ++d) {
        ref += q[h * hs + d] * k[kv * hs + d];
        got += static_cast<double>(qz[h * hs + d]) * kz[kv * hs + d];
        unpermuted += static_cast<double>(qu[h * hs + d]) * ku[kv * hs + d];
        scale += std::fabs(q[h * hs + d] * k[kv * hs + d]);
      }
      EXPECT_NEAR(got, ref, 1e-5 * (1 + scale)) << "positions " << p1 << ", " << p2 << " head " << h;
      if (p1 != p2) worst_unpermuted = std::max(worst_unpermuted, std::fabs(unpermuted - ref));
    }
  }
  // Without the permutation the scores differ: the test can tell the layouts apart.
  EXPECT_GT(worst_unpermuted, 0.1);
}

// ---------------------------------------------------------------------------------------------
// Files

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.max_seq_len = 32;
  c.tie_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.layer_types.clear();
  c.resolve();
  return c;
}

ParameterSet<float> random_params(const ModelConfig& c, std::uint64_t seed) {
  ParameterSet<float> p(c);
  init_parameters(p, seed, 0.5);
  Rng rng(seed + 1);
  for (const TensorInfo& t : p.layout.tensors) {
    if (t.is_norm) {
      for (std::size_t i = 0; i < t.numel; ++i) p.tensor(t)[i] = static_cast<float>(1 + 0.1 * rng.normal());
    }
  }
  return p;
}

bool bitwise_equal(const ParameterSet<float>& a, const ParameterSet<float>& b) {
  return a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

TEST(Llama2c, V0ExportImportRoundTrip) {
  TempDir tmp;
  for (bool tied : {true, false}) {
    auto params = random_params(tiny_config(tied), 21);
    const std::string path = tmp.file(tied ? "tied.bin" : "untied.bin");
    export_llama2c_v0(path, params);
    Llama2cHeader h = read_llama2c_header(path);
    EXPECT_EQ(h.version, 0);
    EXPECT_EQ(h.shared_classifier, tied);
    EXPECT_EQ(h.vocab_size, 37);
    EXPECT_EQ(h.expected_file_size, std::filesystem::file_size(path));
    // The header stores a negative vocab size for an unshared classifier.
    auto bytes = test::read_bytes(path);
    std::int32_t v;
    std::memcpy(&v, bytes.data() + 20, 4);
    EXPECT_EQ(v, tied ? 37 : -37);
    auto loaded = load_llama2c(path);
    EXPECT_EQ(config_to_json(loaded.config).dump(), config_to_json(params.config).dump());
    EXPECT_TRUE(bitwise_equal(loaded, params));
    // The file itself holds Wq in the interleaved layout: row 1 of the file is row hs/2 of zebra's.
    const std::size_t wq_offset = 28 + 4 * (37 * 16 + 2 * 16);
    float file_row1_col0;
    std::memcpy(&file_row1_col0, bytes.data() + wq_offset + 16 * 4, 4);
    EXPECT_EQ(file_row1_col0, params.views.layers[0].wq[2 * 16]);
  }
  // A pattern override re-lays the imported model.
  auto params = random_params(tiny_config(true), 22);
  export_llama2c_v0(tmp.file("m.bin"), params);
  auto relaid = load_llama2c(tmp.file("m.bin"), ModelAdjustment::pattern(2, 8));
  EXPECT_EQ(relaid.config.pattern_string(), "GL");
  EXPECT_EQ(relaid.config.window, 8);
  EXPECT_TRUE(bitwise_equal(relaid, params));
}

TEST(Llama2c, ExportRefusesInexpressibleModels) {
  TempDir tmp;
  ModelConfig c = tiny_config(true);
  c.rope_theta = 500000.0;
  expect_error([&] { export_llama2c_v0(tmp.file("x.bin"), ParameterSet<float>(c)); }, {"rope_theta"});
  c = tiny_config(true);
  c.head_dim = 8;
  expect_error([&] { export_llama2c_v0(tmp.file("x.bin"), ParameterSet<float>(c)); }, {"head_dim * n_heads"});
}

// Writes a version 1 or 2 file the way export.py does, independently of the loader. The matrices are
// taken from `p` and their Wq/Wk rows put back in the interleaved layout. Version 2 quantizes each
// tensor in groups of `gs` (scale = max|w| / 127, q = round(w / scale)); `deq` receives the values
// the file then represents, in zebra's layout.
std::vector<std::uint8_t> versioned_file(const ParameterSet<float>& p, int version, std::int32_t gs,
                                         ParameterSet<float>* deq) {
  const ModelConfig& c = p.config;
  std::vector<std::uint8_t> out;
  test::append_pod(out, std::uint32_t{0x616b3432});
  test::append_pod(out, std::int32_t{version});
  for (std::int64_t v : {c.d_model, c.ffn_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len}) {
    test::append_pod(out, static_cast<std::int32_t>(v));
  }
  out.push_back(c.tie_embeddings ? 1 : 0);
  if (version == 2) test::append_pod(out, gs);
  out.resize(256, 0);
  auto f32 = [&](const float* w, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) test::append_pod(out, w[i]);
  };
  const auto D = static_cast<std::size_t>(c.d_model), F = static_cast<std::size_t>(c.ffn_dim),
             V = static_cast<std::size_t>(c.vocab_size), kvd = static_cast<std::size_t>(c.kv_dim());
  const auto& v = p.views;
  // Matrix `w` [rows, D or F]; `heads` > 0: convert rows to interleaved first. `dst`: where the
  // represented values go in `deq` (zebra layout).
  auto mat = [&](const float* w, std::size_t n, std::int64_t heads, float* dst) {
    std::vector<float> m(w, w + n);
    if (heads > 0) permute_half_to_interleaved(m.data(), heads, c.head_dim, c.d_model);
    if (version == 1) {
      f32(m.data(), n);
      return;
    }
    std::vector<float> scales(n / static_cast<std::size_t>(gs));
    std::vector<std::int8_t> q(n);
    std::vector<float> rep(n);
    for (std::size_t g = 0; g < scales.size(); ++g) {
      float amax = 0;
      for (std::int32_t i = 0; i < gs; ++i) amax = std::max(amax, std::fabs(m[g * gs + i]));
      scales[g] = amax / 127.0f;
      for (std::int32_t i = 0; i < gs; ++i) {
        q[g * gs + i] = static_cast<std::int8_t>(std::lround(m[g * gs + i] / scales[g]));
        rep[g * gs + i] = static_cast<float>(q[g * gs + i]) * scales[g];
      }
    }
    out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(q.data()),
               reinterpret_cast<const std::uint8_t*>(q.data()) + n);
    f32(scales.data(), scales.size());
    if (heads > 0) permute_interleaved_to_half(rep.data(), heads, c.head_dim, c.d_model);
    std::memcpy(dst, rep.data(), n * sizeof(float));
  };
  auto& dv = deq->views;
  for (const auto& w : v.layers) f32(w.attn_norm, D);
  for (const auto& w : v.layers) f32(w.ffn_norm, D);
  f32(v.final_norm, D);
  mat(v.embed, V * D, 0, dv.embed);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].wq, D * D, c.n_heads, dv.layers[l].wq);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].wk, kvd * D, c.n_kv_heads, dv.layers[l].wk);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].wv, kvd * D, 0, dv.layers[l].wv);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].wo, D * D, 0, dv.layers[l].wo);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].w_gate, F * D, 0, dv.layers[l].w_gate);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].w_down, D * F, 0, dv.layers[l].w_down);
  for (std::size_t l = 0; l < v.layers.size(); ++l) mat(v.layers[l].w_up, F * D, 0, dv.layers[l].w_up);
  if (!c.tie_embeddings) mat(v.lm_head, V * D, 0, dv.lm_head);
  return out;
}

TEST(Llama2c, Version1And2Files) {
  TempDir tmp;
  for (bool tied : {true, false}) {
    auto params = random_params(tiny_config(tied), 31);
    ParameterSet<float> deq = params;
    test::write_bytes(tmp.file("v1.bin"), versioned_file(params, 1, 0, &deq));
    EXPECT_EQ(read_llama2c_header(tmp.file("v1.bin")).version, 1);
    auto v1 = load_llama2c(tmp.file("v1.bin"));
    EXPECT_EQ(v1.config.tie_embeddings, tied);
    EXPECT_TRUE(bitwise_equal(v1, params));

    deq = params;
    test::write_bytes(tmp.file("v2.bin"), versioned_file(params, 2, 8, &deq));
    Llama2cHeader h = read_llama2c_header(tmp.file("v2.bin"));
    EXPECT_EQ(h.version, 2);
    EXPECT_EQ(h.group_size, 8);
    auto v2 = load_llama2c(tmp.file("v2.bin"));
    EXPECT_TRUE(bitwise_equal(v2, deq));
    // Q8_0 is close to the original: within half a quantization step of each group.
    double worst = 0;
    for (std::size_t i = 0; i < params.data.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::fabs(v2.data[i] - params.data[i])));
    EXPECT_LT(worst, 0.02);
  }
}

TEST(Llama2c, Stories260KLoads) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::string path = test::shared_dir() + "/models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  Llama2cHeader h = read_llama2c_header(path);
  EXPECT_EQ(h.version, 0);
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  EXPECT_EQ(h.expected_file_size, 1056540u);

  auto p = load_llama2c(path);
  const ModelConfig& c = p.config;
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.pattern_string(), "GGGGG");
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 10000.0);
  for (float x : p.data) ASSERT_TRUE(std::isfinite(x));

  // Compare with the raw file: the embedding is untouched, Wk rows are permuted within each head.
  const auto raw = test::read_bytes(path);
  auto raw_f32 = [&](std::size_t index) {
    float f;
    std::memcpy(&f, raw.data() + 28 + 4 * index, 4);
    return f;
  };
  EXPECT_EQ(p.views.embed[0], raw_f32(0));
  EXPECT_EQ(p.views.embed[512 * 64 - 1], raw_f32(512 * 64 - 1));
  const std::size_t wk_start = 512 * 64 + 5 * 64 + 5 * 64 * 64;  // embed, rms_att, wq (all layers)
  const std::size_t layer = 3, hs = 8, cols = 64;
  const float* wk = p.views.layers[layer].wk;
  for (std::size_t head = 0; head < 4; ++head) {
    for (std::size_t k = 0; k < hs / 2; ++k) {
      for (std::size_t col : {std::size_t{0}, std::size_t{17}, std::size_t{63}}) {
        const std::size_t base = wk_start + layer * 32 * 64 + head * hs * cols;
        EXPECT_EQ(wk[(head * hs + k) * cols + col], raw_f32(base + (2 * k) * cols + col));
        EXPECT_EQ(wk[(head * hs + hs / 2 + k) * cols + col], raw_f32(base + (2 * k + 1) * cols + col));
      }
    }
  }
  // RMSNorm gains of a trained model are well away from zero on average.
  double mean = 0;
  for (std::int64_t i = 0; i < 64; ++i) mean += p.views.final_norm[i] / 64.0;
  EXPECT_GT(mean, 0.1);

  auto zebra = load_llama2c(path, ModelAdjustment::pattern(2, 64));
  EXPECT_EQ(zebra.config.pattern_string(), "GLGLG");
}

// ---------------------------------------------------------------------------------------------
// Hostile files

class Llama2cHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    export_llama2c_v0(dir_.file("ok.bin"), random_params(tiny_config(true), 41));
    good_ = test::read_bytes(dir_.file("ok.bin"));
  }
  // Writes `bytes` and expects load_llama2c to fail with all of `parts` (and the path) in the message.
  void expect_refused(const std::vector<std::uint8_t>& bytes, std::initializer_list<std::string> parts) {
    const std::string p = dir_.file("bad.bin");
    test::write_bytes(p, bytes);
    std::vector<std::string> all(parts);
    all.push_back("bad.bin");
    try {
      (void)load_llama2c(p);
      ADD_FAILURE() << "expected an error containing '" << *parts.begin() << "'";
    } catch (const Error& e) {
      std::string msg = e.what();
      for (const auto& s : all) EXPECT_NE(msg.find(s), std::string::npos) << "missing '" << s << "' in: " << msg;
    }
  }
  std::vector<std::uint8_t> with_field(int field, std::int32_t value) const {
    auto b = good_;
    test::put_pod(b, 4 * static_cast<std::size_t>(field), value);
    return b;
  }
  TempDir dir_;
  std::vector<std::uint8_t> good_;
};

TEST_F(Llama2cHostile, TruncatedOrTrailing) {
  const std::size_t n = good_.size();
  expect_refused({good_.begin(), good_.end() - 1},
                 {"expected " + std::to_string(n) + " bytes, found " + std::to_string(n - 1), "truncated"});
  expect_refused({good_.begin(), good_.begin() + 100}, {"expected " + std::to_string(n) + " bytes, found 100"});
  auto longer = good_;
  longer.push_back(0);
  expect_refused(longer, {"found " + std::to_string(n + 1), "trailing"});
  expect_refused({good_.begin(), good_.begin() + 10}, {"shorter than the 28-byte"});
  expect_refused({}, {"shorter"});
  for (std::size_t cut = 0; cut < n; cut += 61) {
    test::write_bytes(dir_.file("cut.bin"), {good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(cut)});
    EXPECT_THROW((void)load_llama2c(dir_.file("cut.bin")), Error) << cut;
  }
}

TEST_F(Llama2cHostile, BadDimensions) {
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int f = 0; f < 7; ++f) {
    expect_refused(with_field(f, 0), {std::string("header field ") + names[f] + " = 0"});
    expect_refused(with_field(f, 1 << 30), {std::string(names[f]) + " = 1073741824"});
    if (f != 5) expect_refused(with_field(f, -3), {std::string(names[f]) + " = -3"});
  }
  expect_refused(with_field(5, std::numeric_limits<std::int32_t>::min()), {"vocab_size = 2147483648"});
  expect_refused(with_field(0, 18), {"dim 18 is not a multiple of n_heads 4"});
  expect_refused(with_field(4, 3), {"n_heads 4 is not a multiple of n_kv_heads 3"});
  expect_refused(with_field(0, 12), {"head size", "3", "odd"});
  // A negative vocab size on a file without a classifier: the size no longer adds up.
  expect_refused(with_field(5, -37), {"unshared", "expected", "truncated"});
  // Dimensions whose sizes overflow 64 bits.
  auto huge = with_field(0, 1 << 24);
  test::put_pod(huge, 4, std::int32_t{1 << 24});
  test::put_pod(huge, 8, std::int32_t{1 << 24});
  test::put_pod(huge, 12, std::int32_t{1 << 10});
  test::put_pod(huge, 16, std::int32_t{1 << 10});
  expect_refused(huge, {"overflow"});
}

TEST_F(Llama2cHostile, BadVersionedHeaders) {
  ParameterSet<float> deq = random_params(tiny_config(true), 42);
  const auto v1 = versioned_file(deq, 1, 0, &deq);
  auto b = v1;
  test::put_pod(b, 4, std::int32_t{3});
  expect_refused(b, {"version 3 is not supported"});
  expect_refused({v1.begin(), v1.begin() + 100}, {"shorter than the 256-byte header"});
  b = v1;
  b[36] = 7;
  expect_refused(b, {"shared_classifier byte is 7"});
  b = v1;
  test::put_pod(b, 8, std::int32_t{-16});
  expect_refused(b, {"version 1", "dim = -16"});

  const auto v2 = versioned_file(deq, 2, 8, &deq);
  b = v2;
  test::put_pod(b, 37, std::int32_t{0});
  expect_refused(b, {"group_size = 0"});
  b = v2;
  test::put_pod(b, 37, std::int32_t{5});
  expect_refused(b, {"not a multiple of group_size 5"});
  expect_refused({v2.begin(), v2.end() - 3}, {"version 2", "truncated"});
}

// Random headers never crash: they load (only if consistent) or throw zebra::Error.
TEST_F(Llama2cHostile, RandomHeadersNeverCrash) {
  Rng rng(9);
  for (int trial = 0; trial < 200; ++trial) {
    auto b = good_;
    const int field = static_cast<int>(rng.below(7));
    std::int32_t value;
    switch (rng.below(3)) {
      case 0: value = static_cast<std::int32_t>(rng.below(64)) - 8; break;
      case 1: value = static_cast<std::int32_t>(rng.next_u64()); break;
      default: value = static_cast<std::int32_t>(1u << rng.below(31)); break;
    }
    test::put_pod(b, 4 * static_cast<std::size_t>(field), value);
    test::write_bytes(dir_.file("fuzz.bin"), b);
    try {
      (void)load_llama2c(dir_.file("fuzz.bin"));
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace zebra
