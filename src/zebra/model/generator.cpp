#include "zebra/model/generator.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>

#include <cblas.h>

#include "zebra/ops/attention.hpp"
#include "zebra/ops/embedding.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

// out[n, OC] = inp[n, IC] . weight[OC, IC]^T. Decoding multiplies single rows: OpenBLAS 0.3.21's GEMM packs
// the whole weight matrix on every call even for one row (measured: 60% of a decode step in sgemm_incopy),
// so a few rows go to GEMV, which streams the weight once per row without packing. More rows: the GEMM.
constexpr std::int64_t kGemvMaxRows = 2;

template <typename T>
void linear(T* out, const T* inp, const T* weight, std::int64_t n, std::int64_t in_features, std::int64_t out_features) {
  if (n > kGemvMaxRows) {
    matmul_forward(out, inp, weight, n, in_features, out_features);
    return;
  }
  for (std::int64_t r = 0; r < n; ++r) {
    const auto oc = static_cast<blasint>(out_features), ic = static_cast<blasint>(in_features);
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, oc, ic, 1.0f, weight, ic, inp + r * in_features, 1, 0.0f,
                  out + r * out_features, 1);
    } else {
      cblas_dgemv(CblasRowMajor, CblasNoTrans, oc, ic, 1.0, weight, ic, inp + r * in_features, 1, 0.0,
                  out + r * out_features, 1);
    }
  }
}

// y[n] += x[n]
template <typename T>
void add_inplace(T* y, const T* x, std::int64_t n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace

template <typename T>
InferenceSession<T>::InferenceSession(const ParameterSet<T>& params, SessionOptions options)
    : params_(&params), options_(options) {
  const ModelConfig& c = params.config;
  ZEBRA_CHECK(static_cast<std::int64_t>(c.layer_types.size()) == c.n_layers,
              "InferenceSession: the model's layer pattern is not resolved");
  ZEBRA_CHECK(options.chunk_size >= 1, "InferenceSession: chunk_size must be >= 1, got ", options.chunk_size);
  ZEBRA_CHECK(options.max_context >= 0, "InferenceSession: max_context must be >= 0, got ", options.max_context);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(options.max_context <= c.max_seq_len, "InferenceSession: max_context ", options.max_context,
                " exceeds the learned position table (max_seq_len ", c.max_seq_len, ")");
    if (options_.max_context == 0) options_.max_context = c.max_seq_len;
  }
  cache_ = KvCache<T>(c, options_.max_context);
  if (c.pos_embedding == PosEmbedding::kAlibi) alibi_ = alibi_slopes(c.n_heads);
  logits_.assign(sz(c.vocab_size), T(0));
}

template <typename T>
void InferenceSession<T>::reset() {
  cache_.reset();
  tokens_.clear();
  std::fill(logits_.begin(), logits_.end(), T(0));
}

template <typename T>
void InferenceSession<T>::fill_synthetic(std::int64_t n, std::int32_t token, std::uint64_t seed) {
  const ModelConfig& c = config();
  ZEBRA_CHECK(n >= 0, "fill_synthetic: n must be >= 0, got ", n);
  ZEBRA_CHECK(c.pos_embedding != PosEmbedding::kLearned || n_past() + n <= c.max_seq_len,
              "fill_synthetic: position ", n_past() + n - 1, " is outside the learned position table (",
              c.max_seq_len, " positions)");
  cache_.reserve(n);
  const std::int64_t kvd = c.kv_dim(), rows = 4096;
  std::vector<T> k(static_cast<std::size_t>(rows * kvd)), v(k.size());
  Rng rng(seed);
  for (T& x : k) x = static_cast<T>(rng.normal());
  for (T& x : v) x = static_cast<T>(rng.normal());
  // Blocks of `rows` positions, all with the same random rows: the content does not matter for the cost.
  for (std::int64_t p0 = 0; p0 < n; p0 += rows) {
    const std::int64_t m = std::min(rows, n - p0);
    for (std::int64_t l = 0; l < c.n_layers; ++l) cache_.write(l, n_past(), m, k.data(), v.data(), kvd);
    cache_.advance(m);
  }
  tokens_.insert(tokens_.end(), static_cast<std::size_t>(n), token);
}

template <typename T>
void InferenceSession<T>::rewind(const Mark& m) {
  ZEBRA_CHECK(m.n_tokens <= tokens_.size() && static_cast<std::int64_t>(m.n_tokens) == m.cache.n_past,
              "InferenceSession::rewind: the mark (", m.n_tokens, " tokens) is not an earlier point of this session (",
              tokens_.size(), " tokens)");
  cache_.restore(m.cache);
  tokens_.resize(m.n_tokens);
  logits_ = m.logits;
}

template <typename T>
void InferenceSession<T>::ensure_workspace(std::int64_t n) {
  if (n <= ws_rows_) return;
  const ModelConfig& c = config();
  const std::int64_t d = c.d_model, qkv = c.q_dim() + 2 * c.kv_dim(), f = c.ffn_dim;
  x_.resize(sz(n * d));
  xn_.resize(sz(n * d));
  rstd_.resize(sz(n));
  qkv_.resize(sz(n * qkv));
  att_.resize(sz(n * c.q_dim()));
  h_.resize(sz(n * d));
  gu_.resize(sz(n * 2 * f));
  act_.resize(sz(n * f));
  positions_.resize(sz(n));
  ws_rows_ = n;
}

template <typename T>
std::span<const T> InferenceSession<T>::prefill(std::span<const std::int32_t> tokens, std::int64_t chunk_size,
                                                std::vector<T>* all_logits) {
  const ModelConfig& c = config();
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  ZEBRA_CHECK(n >= 1, "prefill needs at least one token");
  const std::int64_t chunk = chunk_size > 0 ? chunk_size : options_.chunk_size;
  const std::int64_t p_end = n_past() + n;
  ZEBRA_CHECK(p_end <= std::numeric_limits<std::int32_t>::max(), "prefill: position ", p_end,
              " does not fit the 32-bit position index");
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(p_end <= c.max_seq_len, "position ", p_end - 1, " is outside the learned position table (",
                c.max_seq_len, " positions, max_seq_len): this model cannot run past ", c.max_seq_len, " tokens");
  }
  if (options_.max_context > 0) {
    ZEBRA_CHECK(p_end <= options_.max_context, "the context is full: ", n_past(), " positions cached + ", n,
                " new > the maximum context of ", options_.max_context);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    ZEBRA_CHECK(tokens[sz(i)] >= 0 && tokens[sz(i)] < c.vocab_size, "prefill: token id ", tokens[sz(i)],
                " at index ", i, " is outside the vocabulary [0, ", c.vocab_size, ")");
  }
  if (c.pos_embedding == PosEmbedding::kRope && rope_.n_positions < p_end) {
    RopeParams p{c.head_dim, c.rope_theta, c.rope_scaling, c.rope_scaling_factor};
    // Doubling: a long decode does not rebuild the table at every step.
    std::int64_t rows = std::max<std::int64_t>({p_end, 2 * rope_.n_positions, 1024});
    if (options_.max_context > 0) rows = std::min(rows, std::max(options_.max_context, p_end));
    rope_ = make_rope_table<T>(p, rows);
  }
  cache_.reserve(n);
  if (all_logits != nullptr) all_logits->assign(sz(n * c.vocab_size), T(0));
  ensure_workspace(std::min(chunk, n));
  for (std::int64_t i0 = 0; i0 < n; i0 += chunk) {
    const std::int64_t m = std::min(chunk, n - i0);
    T* out = all_logits == nullptr ? nullptr : all_logits->data() + i0 * c.vocab_size;
    const int threads = num_threads();
    if (threads > 1 && chunk_flops(m) < options_.single_thread_below_flops) {
      set_num_threads(1);
      try {
        run_chunk(tokens.data() + i0, m, out);
      } catch (...) {
        set_num_threads(threads);
        throw;
      }
      set_num_threads(threads);
    } else {
      run_chunk(tokens.data() + i0, m, out);
    }
  }
  return last_logits();
}

// Forward FLOPs of a chunk of n tokens after n_past: 2 per weight per token (projections and lm head) plus
// 4 * head_dim * n_heads per visible (query, key) pair.
template <typename T>
double InferenceSession<T>::chunk_flops(std::int64_t n) const {
  const ModelConfig& c = config();
  const double weights = static_cast<double>(params_->data.size());
  double pairs = 0.0;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    pairs += static_cast<double>(n) * static_cast<double>(std::min(n_past() + n, c.layer_window(l)));
  }
  return 2.0 * weights * static_cast<double>(n) + 4.0 * static_cast<double>(c.q_dim()) * pairs;
}

template <typename T>
std::span<const T> InferenceSession<T>::decode(std::int32_t token) {
  return prefill(std::span<const std::int32_t>(&token, 1), 1);
}

template <typename T>
std::span<const T> InferenceSession<T>::prefill_reusing(std::span<const std::int32_t> tokens,
                                                        std::int64_t chunk_size) {
  const bool is_prefix = !tokens_.empty() && tokens_.size() <= tokens.size() &&
                         std::equal(tokens_.begin(), tokens_.end(), tokens.begin());
  if (!is_prefix) reset();
  const std::span<const std::int32_t> rest = tokens.subspan(tokens_.size());
  if (rest.empty()) return last_logits();
  return prefill(rest, chunk_size);
}

// One chunk of n tokens at positions [n_past, n_past + n). all_logits: [n, V] or null.
template <typename T>
void InferenceSession<T>::run_chunk(const std::int32_t* tokens, std::int64_t n, T* all_logits) {
  const ModelConfig& c = config();
  const ParamViews<T>& w = params_->views;
  const std::int64_t d = c.d_model, p0 = n_past();
  for (std::int64_t i = 0; i < n; ++i) positions_[sz(i)] = static_cast<std::int32_t>(p0 + i);

  embedding_forward(x_.data(), tokens, w.embed, n, d, c.vocab_size);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    for (std::int64_t r = 0; r < n; ++r) {
      const T* pe = w.pos_embed + (p0 + r) * d;
      T* x = x_.data() + r * d;
      for (std::int64_t i = 0; i < d; ++i) x[i] += pe[i];
    }
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) layer_forward(l, n, p0);
  cache_.advance(n);
  tokens_.insert(tokens_.end(), tokens, tokens + n);

  // Final norm and lm head: every row when asked, else only the last.
  const std::int64_t first_row = all_logits != nullptr ? 0 : n - 1;
  const std::int64_t rows = n - first_row;
  rmsnorm_forward(xn_.data(), rstd_.data(), x_.data() + first_row * d, w.final_norm, rows, d, c.norm_eps);
  if (all_logits != nullptr) {
    linear(all_logits, xn_.data(), w.lm_head, rows, d, c.vocab_size);
    std::copy(all_logits + (rows - 1) * c.vocab_size, all_logits + rows * c.vocab_size, logits_.begin());
  } else {
    linear(logits_.data(), xn_.data(), w.lm_head, 1, d, c.vocab_size);
  }
}

// x_ [n, D] holds the layer's input on entry and its output on exit.
template <typename T>
void InferenceSession<T>::layer_forward(std::int64_t l, std::int64_t n, std::int64_t p0) {
  const ModelConfig& c = config();
  const LayerWeights<T>& w = params_->views.layers[sz(l)];
  const std::int64_t d = c.d_model, f = c.ffn_dim;
  const std::int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;

  rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.attn_norm, n, d, c.norm_eps);
  linear(qkv_.data(), xn_.data(), w.wq, n, d, qkv_dim);  // [n, QKV]
  T* q = qkv_.data();
  T* k = q + qd;
  T* v = k + kvd;
  if (c.pos_embedding == PosEmbedding::kRope) {
    rope_forward(q, positions_.data(), rope_, n, c.n_heads, qkv_dim);
    rope_forward(k, positions_.data(), rope_, n, c.n_kv_heads, qkv_dim);
  }
  CachedAttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, qkv_dim, qkv_dim};
  attention_cached_forward(att_.data(), q, k, v, n, p0, cache_.past_source(l), shape, c.layer_window(l),
                           alibi_.empty() ? nullptr : alibi_.data());
  // Only now may the chunk enter the cache: in a local layer's ring it overwrites keys that earlier
  // queries of this very chunk needed.
  cache_.write(l, p0, n, k, v, qkv_dim);
  linear(h_.data(), att_.data(), w.wo, n, qd, d);
  add_inplace(h_.data(), x_.data(), n * d);

  rmsnorm_forward(xn_.data(), rstd_.data(), h_.data(), w.ffn_norm, n, d, c.norm_eps);
  linear(gu_.data(), xn_.data(), w.w_gate, n, d, 2 * f);  // [n, 2F] gate | up
  swiglu_forward(act_.data(), gu_.data(), n, f);
  linear(x_.data(), act_.data(), w.w_down, n, f, d);
  add_inplace(x_.data(), h_.data(), n * d);
}

template class InferenceSession<float>;
template class InferenceSession<double>;

}  // namespace zebra
