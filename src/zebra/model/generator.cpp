#include "zebra/model/generator.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "zebra/model/block.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/ops/attention.hpp"
#include "zebra/ops/attention_cached.hpp"
#include "zebra/ops/embedding.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

}  // namespace

template <typename T>
InferenceSession<T>::InferenceSession(const ParameterSet<T>& params, SessionOptions options)
    : InferenceSession(weights_of(params), options) {}

template <typename T>
InferenceSession<T>::InferenceSession(const ModelWeights<T>& weights, SessionOptions options)
    : weights_(weights), options_(options) {
  const ModelConfig& c = weights_.config;
  ZEBRA_CHECK(static_cast<std::int64_t>(c.layer_types.size()) == c.n_layers,
              "InferenceSession: the model's layer pattern is not resolved");
  ZEBRA_CHECK(options.chunk_size >= 1, "InferenceSession: chunk_size must be >= 1, got ", options.chunk_size);
  ZEBRA_CHECK(options.max_context >= 0, "InferenceSession: max_context must be >= 0, got ", options.max_context);
  ZEBRA_CHECK(options.compute.threads >= 0, "InferenceSession: threads must be >= 0, got ", options.compute.threads);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(options.max_context <= c.max_seq_len, "InferenceSession: max_context ", options.max_context,
                " exceeds the learned position table (max_seq_len ", c.max_seq_len, ")");
    if (options_.max_context == 0) options_.max_context = c.max_seq_len;
  }
  kv_ = KvCache<T>(c, options_.max_context, options_.kv_dtype.value_or(kDenseDType<T>));
  if (c.pos_embedding == PosEmbedding::kAlibi) alibi_ = alibi_slopes(c.n_heads);
  current_ = add_sequence();
}

template <typename T>
SeqId InferenceSession<T>::add_sequence() {
  const SeqId id = kv_.add_sequence();
  states_[id].logits.assign(sz(config().vocab_size), T(0));
  return id;
}

template <typename T>
void InferenceSession<T>::remove_sequence(SeqId id) {
  ZEBRA_CHECK(id != current_, "InferenceSession: sequence ", id, " is the current one; select another first");
  kv_.remove_sequence(id);
  states_.erase(id);
}

template <typename T>
SeqId InferenceSession<T>::fork_sequence(SeqId from) {
  const SeqId id = kv_.fork_sequence(from);
  states_[id] = states_.at(from);
  return id;
}

template <typename T>
void InferenceSession<T>::select(SeqId id) {
  ZEBRA_CHECK(kv_.contains(id), "InferenceSession: no sequence ", id);
  current_ = id;
}

template <typename T>
std::span<const T> InferenceSession<T>::logits_of(SeqId id) const {
  auto it = states_.find(id);
  ZEBRA_CHECK(it != states_.end(), "InferenceSession: no sequence ", id);
  return {it->second.logits.data(), it->second.logits.size()};
}

template <typename T>
void InferenceSession<T>::reset() {
  kv_.sequence(current_).reset();
  SeqState& s = states_.at(current_);
  s.tokens.clear();
  std::fill(s.logits.begin(), s.logits.end(), T(0));
}

template <typename T>
typename InferenceSession<T>::Mark InferenceSession<T>::mark() const {
  return Mark{cache().snapshot(), tokens().size(), seq().logits};
}

template <typename T>
void InferenceSession<T>::fill_synthetic(std::int64_t n, std::int32_t token, std::uint64_t seed) {
  const ModelConfig& c = config();
  SequenceCache<T>& cache = kv_.sequence(current_);
  ZEBRA_CHECK(n >= 0, "fill_synthetic: n must be >= 0, got ", n);
  ZEBRA_CHECK(c.pos_embedding != PosEmbedding::kLearned || cache.n_past() + n <= c.max_seq_len,
              "fill_synthetic: position ", cache.n_past() + n - 1, " is outside the learned position table (",
              c.max_seq_len, " positions)");
  cache.reserve(n);
  const std::int64_t kvd = c.kv_dim(), rows = 4096;
  std::vector<T> k(static_cast<std::size_t>(rows * kvd)), v(k.size());
  Rng rng(seed);
  for (T& x : k) x = static_cast<T>(rng.normal());
  for (T& x : v) x = static_cast<T>(rng.normal());
  // Blocks of `rows` positions, all with the same random rows: the content does not matter for the cost.
  for (std::int64_t p0 = 0; p0 < n; p0 += rows) {
    const std::int64_t m = std::min(rows, n - p0);
    for (std::int64_t l = 0; l < c.n_layers; ++l) cache.write(l, cache.n_past(), m, k.data(), v.data(), kvd);
    cache.advance(m);
  }
  std::vector<std::int32_t>& toks = states_.at(current_).tokens;
  toks.insert(toks.end(), static_cast<std::size_t>(n), token);
}

template <typename T>
void InferenceSession<T>::rewind(const Mark& m) {
  SeqState& s = states_.at(current_);
  ZEBRA_CHECK(m.n_tokens <= s.tokens.size() && static_cast<std::int64_t>(m.n_tokens) == m.cache.n_past,
              "InferenceSession::rewind: the mark (", m.n_tokens, " tokens) is not an earlier point of this sequence (",
              s.tokens.size(), " tokens)");
  kv_.sequence(current_).restore(m.cache);
  s.tokens.resize(m.n_tokens);
  s.logits = m.logits;
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
  lse_.resize(sz(n * c.n_heads));
  ws_rows_ = n;
}

template <typename T>
void InferenceSession<T>::check_tokens(const SequenceCache<T>& cache, std::span<const std::int32_t> tokens) const {
  const ModelConfig& c = config();
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  ZEBRA_CHECK(n >= 1, "prefill needs at least one token");
  const std::int64_t p_end = cache.n_past() + n;
  ZEBRA_CHECK(p_end <= std::numeric_limits<std::int32_t>::max(), "prefill: position ", p_end,
              " does not fit the 32-bit position index");
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(p_end <= c.max_seq_len, "position ", p_end - 1, " is outside the learned position table (",
                c.max_seq_len, " positions, max_seq_len): this model cannot run past ", c.max_seq_len, " tokens");
  }
  if (options_.max_context > 0) {
    ZEBRA_CHECK(p_end <= options_.max_context, "the context is full: ", cache.n_past(), " positions cached + ", n,
                " new > the maximum context of ", options_.max_context);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    ZEBRA_CHECK(tokens[sz(i)] >= 0 && tokens[sz(i)] < c.vocab_size, "prefill: token id ", tokens[sz(i)], " at index ",
                i, " is outside the vocabulary [0, ", c.vocab_size, ")");
  }
}

// Dynamic NTK recomputes the frequencies for each call from its largest position, as transformers does (the
// cached keys keep the rotation they got): past the original length the table is rebuilt per call.
template <typename T>
void InferenceSession<T>::ensure_rope(std::int64_t p_end) {
  const ModelConfig& c = config();
  if (c.pos_embedding != PosEmbedding::kRope) return;
  const RopeParams rope_params = c.rope_params();
  const std::int64_t rope_basis = rope_table_basis(rope_params, p_end);
  if (rope_.n_positions >= p_end && rope_.basis == rope_basis) return;
  // Doubling: a long decode does not rebuild the table at every step.
  std::int64_t rows = std::max<std::int64_t>({p_end, 2 * rope_.n_positions, 1024});
  if (rope_basis > 0 && rope_basis == p_end) rows = p_end;  // the next call's table differs anyway
  if (options_.max_context > 0) rows = std::min(rows, std::max(options_.max_context, p_end));
  rope_ = make_rope_table<T>(rope_params, rows, rope_basis);
}

template <typename T>
std::span<const T> InferenceSession<T>::prefill(std::span<const std::int32_t> tokens, std::int64_t chunk_size,
                                                std::vector<T>* all_logits) {
  const ModelConfig& c = config();
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  SequenceCache<T>& cache = kv_.sequence(current_);
  check_tokens(cache, tokens);
  const std::int64_t chunk = chunk_size > 0 ? chunk_size : options_.chunk_size;
  ensure_rope(cache.n_past() + n);
  cache.reserve(n);
  if (all_logits != nullptr) all_logits->assign(sz(n * c.vocab_size), T(0));
  ensure_workspace(std::min(chunk, n));
  for (std::int64_t i0 = 0; i0 < n; i0 += chunk) {
    const std::int64_t m = std::min(chunk, n - i0);
    T* out = all_logits == nullptr ? nullptr : all_logits->data() + i0 * c.vocab_size;
    forward_rows({Segment{current_, tokens.data() + i0, m, 0, cache.n_past()}}, out);
  }
  return last_logits();
}

template <typename T>
std::span<const T> InferenceSession<T>::run(std::span<const SequenceInput> inputs) {
  const ModelConfig& c = config();
  ZEBRA_CHECK(!inputs.empty(), "InferenceSession::run: no inputs");
  std::vector<Segment> segments;
  std::int64_t rows = 0, p_end = 0;
  for (const SequenceInput& in : inputs) {
    for (const Segment& s : segments) {
      ZEBRA_CHECK(s.seq != in.seq, "InferenceSession::run: sequence ", in.seq, " is given twice");
    }
    SequenceCache<T>& cache = kv_.sequence(in.seq);
    check_tokens(cache, in.tokens);
    const auto n = static_cast<std::int64_t>(in.tokens.size());
    segments.push_back(Segment{in.seq, in.tokens.data(), n, rows, cache.n_past()});
    rows += n;
    p_end = std::max(p_end, cache.n_past() + n);
  }
  for (const Segment& s : segments) kv_.sequence(s.seq).reserve(s.n);
  ensure_rope(p_end);
  ensure_workspace(rows);
  forward_rows(segments, nullptr);
  batch_logits_.resize(sz(static_cast<std::int64_t>(segments.size()) * c.vocab_size));
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::vector<T>& l = states_.at(segments[i].seq).logits;
    std::copy(l.begin(), l.end(), batch_logits_.begin() + static_cast<std::ptrdiff_t>(i * sz(c.vocab_size)));
  }
  return {batch_logits_.data(), batch_logits_.size()};
}

// Forward FLOPs of a pass: 2 per parameter per row (projections and lm head) plus 4 * head_dim * n_heads per
// visible (query, key) pair.
template <typename T>
double InferenceSession<T>::pass_flops(const std::vector<Segment>& segments) const {
  const ModelConfig& c = config();
  const double weights = static_cast<double>(parameter_count(c));
  double pairs = 0.0, rows = 0.0;
  for (const Segment& s : segments) {
    rows += static_cast<double>(s.n);
    for (std::int64_t l = 0; l < c.n_layers; ++l) {
      pairs += static_cast<double>(s.n) * static_cast<double>(std::min(s.p0 + s.n, c.layer_window(l)));
    }
  }
  return 2.0 * weights * rows + 4.0 * static_cast<double>(c.q_dim()) * pairs;
}

template <typename T>
std::span<const T> InferenceSession<T>::decode(std::int32_t token) {
  return prefill(std::span<const std::int32_t>(&token, 1), 1);
}

template <typename T>
std::span<const T> InferenceSession<T>::prefill_reusing(std::span<const std::int32_t> tokens, std::int64_t chunk_size) {
  const std::vector<std::int32_t>& cached = seq().tokens;
  const bool is_prefix =
      !cached.empty() && cached.size() <= tokens.size() && std::equal(cached.begin(), cached.end(), tokens.begin());
  if (!is_prefix) reset();
  const std::span<const std::int32_t> rest = tokens.subspan(seq().tokens.size());
  if (rest.empty()) return last_logits();
  return prefill(rest, chunk_size);
}

template <typename T>
void InferenceSession<T>::forward_rows(const std::vector<Segment>& segments, T* all_logits) {
  const ModelConfig& c = config();
  const ModelWeights<T>& w = weights_;
  const std::int64_t d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
  std::int64_t n = 0;
  for (const Segment& s : segments) n += s.n;
  ZEBRA_CHECK(all_logits == nullptr || segments.size() == 1, "InferenceSession: all logits need one sequence");

  // Threads for this call: small passes run on one thread (see SessionOptions), on this thread's data
  // environment only.
  ComputeOptions compute = options_.compute;
  if (options_.single_thread_below_flops > 0 && pass_flops(segments) < options_.single_thread_below_flops) {
    compute.threads = 1;
  }
  const ThreadScope scope(compute);

  StepTimes* times = options_.times;
  if (times != nullptr) ++times->passes;
  std::int64_t row = 0;
  {
    const TimedScope ts(time_slot(times, &StepTimes::embedding));
    for (const Segment& s : segments) {
      for (std::int64_t i = 0; i < s.n; ++i) positions_[sz(row + i)] = static_cast<std::int32_t>(s.p0 + i);
      embedding_forward(x_.data() + row * d, s.tokens, w.embed, s.n);
      row += s.n;
    }
  }
  if (c.pos_embedding == PosEmbedding::kLearned) {
    for (std::int64_t r = 0; r < n; ++r) {
      const T* pe = w.pos_embed + static_cast<std::int64_t>(positions_[sz(r)]) * d;
      T* x = x_.data() + r * d;
      for (std::int64_t i = 0; i < d; ++i) x[i] += pe[i];
    }
  }

  const BlockContext<T> ctx{&c, positions_.data(), &rope_, compute, times};
  // Both norms of a layer share xn_ / rstd_: the first is dead once q, k, v are projected.
  const BlockState<T> state{rstd_.data(), xn_.data(), qkv_.data(), att_.data(), h_.data(),
                            rstd_.data(), xn_.data(), gu_.data(),  act_.data()};
  const CachedAttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, qkv_dim, qkv_dim};
  const double* alibi = alibi_.empty() ? nullptr : alibi_.data();
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const AttentionStep<T> attention = [&](const T* qkv, T* att) {
      for (const Segment& s : segments) {
        SequenceCache<T>& cache = kv_.sequence(s.seq);
        const T* q = qkv + s.row0 * qkv_dim;
        if (s.p0 == 0) {
          // A sequence's first chunk has no past: plain causal (windowed) self-attention over its rows, which the
          // training forward's tiled SIMD kernel computes several times faster than the cached kernel.
          const AttentionShape as{1, s.n, c.n_heads, c.n_kv_heads, c.head_dim, qkv_dim, qkv_dim};
          attention_forward(att + s.row0 * qd, lse_.data(), q, q + qd, q + qd + kvd, as,
                            AttentionMask{c.layer_window(l), nullptr, alibi}, compute);
        } else {
          attention_cached_forward(att + s.row0 * qd, q, q + qd, q + qd + kvd, s.n, s.p0, cache.past_source(l), shape,
                                   c.layer_window(l), alibi, compute);
        }
        // Only now may the rows enter the cache: in a local layer's ring they overwrite keys that earlier
        // queries of this very chunk needed.
        cache.write(l, s.p0, s.n, q + qd, q + qd + kvd, qkv_dim);
      }
    };
    block_forward(ctx, w.layers[sz(l)], n, x_.data(), x_.data(), state, attention);
  }
  for (const Segment& s : segments) {
    kv_.sequence(s.seq).advance(s.n);
    std::vector<std::int32_t>& toks = states_.at(s.seq).tokens;
    toks.insert(toks.end(), s.tokens, s.tokens + s.n);
  }

  // Final norm and lm head: every row when asked, else the last row of each sequence.
  if (all_logits != nullptr) {
    rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.final_norm, n, d, c.norm_eps, compute);
    weight_matmul(all_logits, c.vocab_size, xn_.data(), n, w.lm_head, compute);
    std::vector<T>& logits = states_.at(segments[0].seq).logits;
    std::copy(all_logits + (n - 1) * c.vocab_size, all_logits + n * c.vocab_size, logits.begin());
    return;
  }
  const auto n_seq = static_cast<std::int64_t>(segments.size());
  for (std::int64_t i = 0; i < n_seq; ++i) {
    const Segment& s = segments[sz(i)];
    std::copy(x_.data() + (s.row0 + s.n - 1) * d, x_.data() + (s.row0 + s.n) * d, h_.data() + i * d);
  }
  {
    const TimedScope ts(time_slot(times, &StepTimes::norms));
    rmsnorm_forward(xn_.data(), rstd_.data(), h_.data(), w.final_norm, n_seq, d, c.norm_eps, compute);
  }
  const TimedScope ts(time_slot(times, &StepTimes::lm_head));
  if (n_seq == 1) {
    weight_matmul(states_.at(segments[0].seq).logits.data(), c.vocab_size, xn_.data(), 1, w.lm_head, compute);
    return;
  }
  std::vector<T> logits(sz(n_seq * c.vocab_size));
  weight_matmul(logits.data(), c.vocab_size, xn_.data(), n_seq, w.lm_head, compute);
  for (std::int64_t i = 0; i < n_seq; ++i) {
    std::vector<T>& out = states_.at(segments[sz(i)].seq).logits;
    std::copy(logits.begin() + i * c.vocab_size, logits.begin() + (i + 1) * c.vocab_size, out.begin());
  }
}

template class InferenceSession<float>;
template class InferenceSession<double>;

}  // namespace zebra
