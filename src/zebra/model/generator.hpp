// Generation with a KV cache (DESIGN.md §1, §6): an InferenceSession runs new tokens of one or several sequences
// through the model after the positions already cached, and keeps their keys and values for the next call.
//
// Each layer is model/block.hpp's block over the new rows, with this attention step: the rows' queries attend to
// their sequence's cache plus the new keys (ops/attention_cached.hpp), then the new keys and values enter the
// cache. Rows of several sequences (run()) go through every matrix product together and through attention
// sequence by sequence. Masking across chunk boundaries is exact: a chunk's queries see the cached keys and the
// earlier keys of the same chunk through ops/mask.hpp's predicate, whatever the chunk size; prefill(A) then
// prefill(B) equals prefill(A + B) (prompt reuse). ALiBi, learned and no positions work as RoPE does; positions
// are absolute (n_past + i), and learned positions past the model's table are refused.
//
// The weights are borrowed (ModelWeights, any dtype the products support): they must outlive the session.
// Threads: options().threads for every call (0 = the OpenMP default of the calling thread); the count applies
// to the calling thread's OpenMP data environment only, never to the process.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/model/kv_cache.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/step_times.hpp"
#include "zebra/model/weights.hpp"
#include "zebra/ops/compute.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

struct SessionOptions {
  std::int64_t max_context = 0;   // most positions one sequence may hold (0 = no limit but memory)
  std::int64_t chunk_size = 512;  // default prefill chunk (tokens per forward pass)
  ComputeOptions compute{};       // threads (0 = the calling thread's default), kernels: per session
  // How the KV cache stores keys and values: null = the session's type T; F16 or BF16 (float sessions) halve
  // the cache's bytes, each value rounded to nearest even (model/kv_cache.hpp).
  std::optional<DType> kv_dtype = std::nullopt;
  // When set, every forward pass adds the wall time of its ops here (model/step_times.hpp); borrowed.
  StepTimes* times = nullptr;
  // A chunk whose estimated work is below this many FLOPs runs on one thread: a decode step of a small
  // model is a few hundred microseconds of work, less than what waking and joining the OpenMP team costs on
  // a busy machine (measured on the 2-core dev machine under load: 1.6 tok/s with 2 spinning threads, 180
  // tok/s with 1, for the 6M-parameter demo model). 0 = never restrict.
  double single_thread_below_flops = 3.2e7;
};

template <typename T>
class InferenceSession {
 public:
  // The weights are borrowed: they must outlive the session and not change while it holds a cache.
  explicit InferenceSession(const ModelWeights<T>& weights, SessionOptions options = {});
  // Dense parameters (views are taken; the parameters are borrowed likewise).
  explicit InferenceSession(const ParameterSet<T>& params, SessionOptions options = {});

  const ModelConfig& config() const { return weights_.config; }
  const SessionOptions& options() const { return options_; }

  // ---- The current sequence (sequence 0 unless select() chose another) ----

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
  // Forgets the current sequence's cache (keeps its allocations).
  void reset();

  // For speed measurements at long context without paying for the prefill: appends n positions whose keys
  // and values are random (N(0, 1), seeded) and whose tokens are `token`. What follows attends to them as
  // to any cached position, so its cost is that of running after n real tokens; its outputs are
  // meaningless.
  void fill_synthetic(std::int64_t n, std::int32_t token, std::uint64_t seed);

  // A point in the conversation to come back to (e.g. to drop generated tokens that ran into a stop
  // string): the cache's snapshot plus the token count and logits at that point.
  struct Mark {
    typename SequenceCache<T>::Snapshot cache;
    std::size_t n_tokens = 0;
    std::vector<T> logits;
  };
  Mark mark() const;
  // Returns to `m`, which must come from the current sequence with no reset() since.
  void rewind(const Mark& m);

  std::int64_t n_past() const { return cache().n_past(); }
  const std::vector<std::int32_t>& tokens() const { return seq().tokens; }  // the cached tokens, in order
  const SequenceCache<T>& cache() const { return kv_.sequence(current_); }
  std::span<const T> last_logits() const { return {seq().logits.data(), seq().logits.size()}; }

  // ---- Many sequences ----

  SeqId current() const { return current_; }
  void select(SeqId id);           // makes `id` the current sequence
  SeqId add_sequence();            // a new empty sequence (not selected)
  void remove_sequence(SeqId id);  // the current sequence cannot be removed
  // A new sequence with the same cached positions, tokens and logits as `from` (KvCache::fork_sequence).
  SeqId fork_sequence(SeqId from);
  std::vector<SeqId> sequences() const { return kv_.sequences(); }
  const KvCache<T>& kv_cache() const { return kv_; }

  // New tokens of several sequences (each id at most once, each with at least one token) in ONE forward
  // pass: their rows go through every matrix product together. Returns each input's last-token logits, in the
  // order given: [inputs.size(), V], valid until the next call. No chunking: the caller sizes the inputs.
  struct SequenceInput {
    SeqId seq = 0;
    std::span<const std::int32_t> tokens;
  };
  std::span<const T> run(std::span<const SequenceInput> inputs);
  // The last logits of sequence `id` [V].
  std::span<const T> logits_of(SeqId id) const;

 private:
  struct SeqState {
    std::vector<std::int32_t> tokens;
    std::vector<T> logits;  // [V] of the last token
  };
  // The rows of one sequence within a forward pass.
  struct Segment {
    SeqId seq = 0;
    const std::int32_t* tokens = nullptr;
    std::int64_t n = 0;
    std::int64_t row0 = 0;  // first row in the pass
    std::int64_t p0 = 0;    // n_past of the sequence before the pass
  };
  const SeqState& seq() const { return states_.at(current_); }
  void check_tokens(const SequenceCache<T>& cache, std::span<const std::int32_t> tokens) const;
  void ensure_rope(std::int64_t p_end);
  // One forward pass over the segments' rows; all_logits: [rows, V] of every row of a single segment, or null.
  void forward_rows(const std::vector<Segment>& segments, T* all_logits);
  void ensure_workspace(std::int64_t n);
  double pass_flops(const std::vector<Segment>& segments) const;

  ModelWeights<T> weights_;
  SessionOptions options_;
  KvCache<T> kv_;
  std::map<SeqId, SeqState> states_;
  SeqId current_ = 0;
  RopeTable<T> rope_;
  std::vector<double> alibi_;
  std::vector<std::int32_t> positions_;  // [n] absolute positions of the pass's rows
  std::vector<T> lse_;                   // [n_heads, n] log-sum-exp of a first chunk's tiled attention (unused after)
  // Workspace for a pass of up to ws_rows_ rows.
  std::int64_t ws_rows_ = 0;
  // [n, D] [n, D] [n] [n, QKV] [n, Hhd] [n, D] [n, 2F] [n, F]; the two norms of a layer share xn_ and rstd_.
  AlignedBuffer<T> x_, xn_, rstd_, qkv_, att_, h_, gu_, act_;
  std::vector<T> batch_logits_;  // [inputs, V] of the last run()
};

}  // namespace zebra
