// Generation with a KV cache (DESIGN.md §1, §6): an InferenceSession runs new tokens through the model
// after the positions already cached, in chunks, and keeps their keys and values for the next call.
//
// The arithmetic per chunk of n tokens at positions p0 .. p0 + n - 1 (p0 = n_past) is the training forward
// pass of model/transformer.cpp, restricted to the new rows:
//   x = embed(tokens) (+ pos_embed[p0 + i] for learned positions)
//   per layer: qkv = rms(x) . [Wq; Wk; Wv]^T  [n, (H + 2 Hkv) hd]; RoPE on q and k at absolute positions
//              att = attention_cached(q; cache of the layer + this chunk's k, v)   (ops/attention_cached.hpp)
//              cache <- k, v of the chunk;  h = x + att . Wo^T
//              x = h + swiglu(rms(h) . [Wgate; Wup]^T) . Wdown^T
//   logits = rms(x) . Wlm^T  (the last row, or every row when asked)
// Masking across chunk boundaries is exact: a chunk's queries see the cached keys and the earlier keys of
// the same chunk through ops/mask.hpp's predicate, whatever the chunk size; prefill(A) then prefill(B)
// equals prefill(A + B) (prompt reuse). ALiBi, learned and no positions work as RoPE does; positions are
// absolute (n_past + i), and learned positions past the model's table are refused.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/model/kv_cache.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

struct SessionOptions {
  std::int64_t max_context = 0;   // most positions the session may hold (0 = no limit but memory)
  std::int64_t chunk_size = 512;  // default prefill chunk (tokens per forward pass)
  // A chunk whose estimated work is below this many FLOPs runs on one thread: a decode step of a small
  // model is a few hundred microseconds of work, less than what waking and joining the OpenMP team costs on
  // a busy machine (measured on the 2-core dev machine under load: 1.6 tok/s with 2 spinning threads, 180
  // tok/s with 1, for the 6M-parameter demo model). 0 = never restrict.
  double single_thread_below_flops = 3.2e7;
};

template <typename T>
class InferenceSession {
 public:
  // The parameters are borrowed: they must outlive the session and not change while it holds a cache.
  explicit InferenceSession(const ParameterSet<T>& params, SessionOptions options = {});

  const ModelConfig& config() const { return params_->config; }
  const SessionOptions& options() const { return options_; }

  // Runs `tokens` (at least one) after the cached positions, in chunks of at most chunk_size tokens
  // (0 = options().chunk_size), and caches them. Returns the logits [V] of the last token (valid until
  // the next call). When all_logits is not null it receives every new position's logits [n, V].
  std::span<const T> prefill(std::span<const std::int32_t> tokens, std::int64_t chunk_size = 0,
                             std::vector<T>* all_logits = nullptr);
  // One token: prefill of a single token.
  std::span<const T> decode(std::int32_t token);
  // Prompt reuse: when the cached tokens are a prefix of `tokens`, runs only the rest (if there is no
  // rest, returns the logits of the last call, which belong to the last cached token); otherwise resets
  // and runs all of them. Returns the logits of the last token.
  std::span<const T> prefill_reusing(std::span<const std::int32_t> tokens, std::int64_t chunk_size = 0);
  // Forgets the cache (keeps its allocations).
  void reset();

  // For speed measurements at long context without paying for the prefill: appends n positions whose keys
  // and values are random (N(0, 1), seeded) and whose tokens are `token`. What follows attends to them as
  // to any cached position, so its cost is that of running after n real tokens; its outputs are
  // meaningless.
  void fill_synthetic(std::int64_t n, std::int32_t token, std::uint64_t seed);

  // A point in the conversation to come back to (e.g. to drop generated tokens that ran into a stop
  // string): the cache's snapshot plus the token count and logits at that point.
  struct Mark {
    typename KvCache<T>::Snapshot cache;
    std::size_t n_tokens = 0;
    std::vector<T> logits;
  };
  Mark mark() const { return Mark{cache_.snapshot(), tokens_.size(), logits_}; }
  // Returns to `m`, which must come from this session with no reset() since.
  void rewind(const Mark& m);

  std::int64_t n_past() const { return cache_.n_past(); }
  const std::vector<std::int32_t>& tokens() const { return tokens_; }  // the cached tokens, in order
  const KvCache<T>& cache() const { return cache_; }
  std::span<const T> last_logits() const { return {logits_.data(), logits_.size()}; }

 private:
  void run_chunk(const std::int32_t* tokens, std::int64_t n, T* all_logits);
  void layer_forward(std::int64_t l, std::int64_t n, std::int64_t p0);
  void ensure_workspace(std::int64_t n);
  double chunk_flops(std::int64_t n) const;

  const ParameterSet<T>* params_;
  SessionOptions options_;
  KvCache<T> cache_;
  std::vector<std::int32_t> tokens_;
  RopeTable<T> rope_;
  std::vector<double> alibi_;
  std::vector<std::int32_t> positions_;  // [n] absolute positions of the chunk
  // Workspace for a chunk of up to ws_rows_ rows.
  std::int64_t ws_rows_ = 0;
  AlignedBuffer<T> x_, xn_, rstd_, qkv_, att_, h_, gu_, act_;  // [n, D] [n, D] [n] [n, QKV] [n, Hhd] [n, D] [n, 2F] [n, F]
  std::vector<T> logits_;  // [V] of the last token
};

}  // namespace zebra
