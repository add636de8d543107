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
#include "zebra/util/timer.hpp"

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
  // Dynamic NTK recomputes the frequencies for each call from its largest position, as transformers does
  // (the cached keys keep the rotation they got): past the original length the table is rebuilt per call.
  const RopeParams rope_params = c.rope_params();
  const std::int64_t rope_basis = rope_table_basis(rope_params, p_end);
  if (c.pos_embedding == PosEmbedding::kRope && (rope_.n_positions < p_end || rope_.basis != rope_basis)) {
    const RopeParams& p = rope_params;
    // Doubling: a long decode does not rebuild the table at every step.
    std::int64_t rows = std::max<std::int64_t>({p_end, 2 * rope_.n_positions, 1024});
    if (rope_basis > 0 && rope_basis == p_end) rows = p_end;  // the next call's table differs anyway
    if (options_.max_context > 0) rows = std::min(rows, std::max(options_.max_context, p_end));
    rope_ = make_rope_table<T>(p, rows, rope_basis);
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

// ---------------------------------------------------------------------------------------------------------

namespace {

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
std::size_t partial_suffix(const std::string& text, const std::string& stop) {
  const std::size_t max_len = std::min(text.size(), stop.empty() ? 0 : stop.size() - 1);
  for (std::size_t len = max_len; len > 0; --len) {
    if (text.compare(text.size() - len, len, stop, 0, len) == 0) return len;
  }
  return 0;
}

// Bytes at the end of `text` that start a UTF-8 character not yet complete.
std::size_t incomplete_utf8_tail(const std::string& text) {
  const std::size_t n = text.size();
  for (std::size_t back = 1; back <= std::min<std::size_t>(3, n); ++back) {
    const auto b = static_cast<unsigned char>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    std::size_t need = 1;
    if ((b & 0xE0) == 0xC0) need = 2;
    else if ((b & 0xF0) == 0xE0) need = 3;
    else if ((b & 0xF8) == 0xF0) need = 4;
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace

std::string StopStringFilter::update(const std::string& text) {
  if (stopped_) return {};
  std::size_t longest = 0;
  for (const std::string& s : stops_) longest = std::max(longest, s.size());
  // A stop string that ends in the new text starts at or after emitted_ - (longest - 1): earlier text was
  // emitted only when no stop string could start there.
  const std::size_t from = emitted_ >= longest ? emitted_ - longest + 1 : 0;
  std::size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    const std::size_t at = text.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  std::string out;
  if (cut != std::string::npos) {
    stopped_ = true;
    if (cut > emitted_) out = text.substr(emitted_, cut - emitted_);
    emitted_ = std::max(emitted_, cut);
    return out;
  }
  std::size_t hold = incomplete_utf8_tail(text);
  for (const std::string& s : stops_) hold = std::max(hold, partial_suffix(text, s));
  const std::size_t safe = text.size() - hold;
  if (safe > emitted_) {
    out = text.substr(emitted_, safe - emitted_);
    emitted_ = safe;
  }
  return out;
}

std::string StopStringFilter::flush(const std::string& text) {
  if (stopped_ || text.size() <= emitted_) return {};
  std::string out = text.substr(emitted_);
  emitted_ = text.size();
  return out;
}

GenerateResult generate_text(InferenceSession<float>& session, Sampler& sampler, std::span<const float> logits,
                             const GenerateOptions& options,
                             const std::function<std::string(const std::vector<std::int32_t>&)>& detokenize,
                             const std::function<void(const std::string&)>& on_text) {
  GenerateResult result;
  StopStringFilter filter(options.stop_strings);
  std::vector<float> work(logits.begin(), logits.end());
  std::vector<std::int32_t> history(session.tokens());
  std::string text;
  result.stop_reason = "length";
  for (std::int64_t step = 0; step < options.max_new_tokens; ++step) {
    const std::int32_t t = sampler.sample(work, history);
    result.tokens.push_back(t);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), t) != options.stop_tokens.end()) {
      result.stop_reason = "stop token";
      break;
    }
    history.push_back(t);
    text = detokenize(result.tokens);
    const std::string piece = filter.update(text);
    if (!piece.empty()) {
      result.text += piece;
      if (on_text) on_text(piece);
    }
    if (filter.stopped()) {
      result.stop_reason = "stop string";
      break;
    }
    if (step + 1 == options.max_new_tokens) break;
    Timer timer;
    const std::span<const float> next = session.decode(t);
    result.decode_seconds += timer.seconds();
    ++result.n_decoded;
    work.assign(next.begin(), next.end());
  }
  if (!filter.stopped()) {
    const std::string rest = filter.flush(text);
    if (!rest.empty()) {
      result.text += rest;
      if (on_text) on_text(rest);
    }
  }
  return result;
}

}  // namespace zebra
