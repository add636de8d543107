// The KV cache for generation: for each sequence, per layer, the post-RoPE keys and the values of its past
// positions. SequenceCache is one sequence's store; KvCache holds many sequences by id (add, remove, fork).
//
// - A global layer keeps every position: position p lives in row p. Its buffer grows (a quarter at a time, up
//   to an optional capacity limit) as positions arrive.
// - A local layer with window w keeps a ring buffer of exactly w rows: position p lives in row p % w, so
//   after positions up to n_past - 1 are written the ring holds [n_past - w, n_past - 1]. The next query
//   (position n_past) sees keys [n_past - w + 1, n_past] under ops/mask.hpp's predicate: all but its own
//   key come from the ring (w - 1 rows would do; the w-th row keeps the slot arithmetic simple and lets
//   the kernel read the chunk's own keys from the chunk). A ring never holds more than w rows; it is
//   allocated lazily (min(w, positions so far) rows, growing to w) so that a short generation with a large
//   window does not allocate the whole window.
// Values are stored as T (float for serving, double for tests) or, for T = float, in 16 bits (F16 or BF16, a
// run-time choice: half the bytes, each value rounded to nearest even on write); the attention kernel widens
// them where it reads them. Keys and values sit in separate buffers, head-major:
// [n_kv_heads, rows, head_dim], so that the rows of one KV head -- what an attention head reads, a tile of
// consecutive positions at a time -- are contiguous in memory.
//
// The cache tracks n_past (positions written so far). The attention kernel reads a layer through
// past_source(l) (ops/attention_cached.hpp); new positions are written with write() after the kernel ran.
//
// Forks: a forked sequence starts with the same positions as its source. Local rings are copied (window rows);
// global layers share their buffers until one of the sharers extends — it then copies the buffer first (copy on
// extend), so a fork of a long prompt costs nothing until it diverges and the prompt is copied at most once per
// branch that grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/ops/attention_cached.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

template <typename T>
class SequenceCache {
 public:
  SequenceCache() = default;
  // max_positions: the most positions a global layer may hold (0 = no limit but memory). storage: T's own dtype
  // (F32 / F64), or F16 / BF16 for T = float.
  explicit SequenceCache(const ModelConfig& config, std::int64_t max_positions = 0, DType storage = kDenseDType<T>);
  // A fork: same positions; rings copied, global buffers shared until either side extends.
  SequenceCache fork() const;

  std::int64_t n_layers() const { return static_cast<std::int64_t>(layers_.size()); }
  std::int64_t n_past() const { return n_past_; }
  std::int64_t kv_dim() const { return kv_dim_; }
  std::int64_t max_positions() const { return max_positions_; }
  DType storage() const { return storage_; }
  bool is_global(std::int64_t l) const { return layer(l).window == kGlobalWindow; }
  std::int64_t window(std::int64_t l) const { return layer(l).window; }
  // Rows allocated for layer l (a local layer: at most its window).
  std::int64_t rows(std::int64_t l) const { return layer(l).rows; }
  // First position layer l still holds: 0 for a global layer, max(0, n_past - window) for a local one.
  std::int64_t first_held(std::int64_t l) const;

  // Makes room for positions [n_past, n_past + n): global layers grow to hold n_past + n rows, local
  // layers to min(window, n_past + n) rows. Throws when the capacity limit would be exceeded.
  void reserve(std::int64_t n);
  // Writes keys/values of positions [p0, p0 + n) of layer l: k, v [n, kv_dim] with row stride `stride`.
  // p0 must be n_past (positions are written in order, before advance()). For a local layer only the
  // last min(n, window) positions are stored (the earlier ones would be overwritten within this call).
  void write(std::int64_t l, std::int64_t p0, std::int64_t n, const T* k, const T* v, std::int64_t stride);
  // Declares positions [n_past, n_past + n) written in every layer.
  void advance(std::int64_t n);
  // Forgets all positions (keeps the allocations).
  void reset() { n_past_ = 0; }

  // A point to come back to: n_past and a copy of every ring (global layers need no copy: later positions
  // only append to them). Costs window rows per local layer, never the global layers' contents.
  struct Snapshot {
    std::int64_t n_past = 0;
    std::vector<std::int64_t> rows;               // per layer: rows per head of the copy
    std::vector<std::vector<std::uint8_t>> k, v;  // per layer: the ring's buffers (empty for global layers)
  };
  Snapshot snapshot() const;
  // Returns to a snapshot taken from this cache at n_past <= the current n_past (positions after it are
  // forgotten; a ring gets back the keys the later positions overwrote).
  void restore(const Snapshot& s);

  // The past keys/values of layer l for ops/attention_cached.hpp.
  KvSource<T> past_source(std::int64_t l) const;
  // Key / value of absolute position p in layer l for KV head g, widened to T: [head_dim] (p must be held).
  std::vector<T> key(std::int64_t l, std::int64_t p, std::int64_t g) const;
  std::vector<T> value(std::int64_t l, std::int64_t p, std::int64_t g) const;

  // Bytes of the key and value buffers allocated (shared global buffers counted in full), and of the rows
  // holding live positions.
  std::size_t bytes_allocated() const;
  std::size_t bytes_used() const;
  // Bytes a full-attention cache (every layer global) of the same model needs for n positions.
  std::size_t full_attention_bytes(std::int64_t n_positions) const;

  // Calls f(k buffer, v buffer) for each layer's buffers (KvCache counts shared ones once).
  template <typename F>
  void for_each_buffer(F&& f) const {
    for (const Layer& a : layers_) f(a.k.get(), a.v.get(), a.rows);
  }

 private:
  struct Layer {
    std::int64_t window = kGlobalWindow;
    std::int64_t rows = 0;  // allocated rows
    // [n_kv_heads, rows, head_dim] values of storage_ (bytes); shared between forks (global layers)
    std::shared_ptr<AlignedBuffer<std::uint8_t>> k, v;
  };
  const Layer& layer(std::int64_t l) const;
  std::int64_t row_of(const Layer& layer, std::int64_t p) const;
  void grow(Layer& layer, std::int64_t rows);
  void make_private(Layer& layer);
  void copy_rows(std::uint8_t* dst, std::int64_t dst_rows, const std::uint8_t* src, std::int64_t src_rows,
                 std::int64_t n) const;
  std::vector<T> widened(const AlignedBuffer<std::uint8_t>& buf, std::int64_t offset) const;
  std::int64_t offset_of(std::int64_t l, std::int64_t p, std::int64_t g) const;

  std::vector<Layer> layers_;
  std::int64_t n_kv_heads_ = 0;
  std::int64_t head_dim_ = 0;
  std::int64_t kv_dim_ = 0;
  std::int64_t max_positions_ = 0;
  std::int64_t n_past_ = 0;
  DType storage_ = kDenseDType<T>;
  std::size_t value_bytes_ = sizeof(T);
};

// Many sequences, each a SequenceCache, by id. Ids are never reused within a cache.
using SeqId = std::int64_t;

template <typename T>
class KvCache {
 public:
  KvCache() = default;
  explicit KvCache(const ModelConfig& config, std::int64_t max_positions = 0, DType storage = kDenseDType<T>)
      : config_(config), max_positions_(max_positions), storage_(storage) {}

  SeqId add_sequence();
  void remove_sequence(SeqId id);
  // A new sequence holding the same positions as `from` (see SequenceCache::fork).
  SeqId fork_sequence(SeqId from);
  bool contains(SeqId id) const { return seqs_.count(id) != 0; }
  std::vector<SeqId> sequences() const;
  SequenceCache<T>& sequence(SeqId id);
  const SequenceCache<T>& sequence(SeqId id) const;

  // Bytes allocated over all sequences, a buffer shared by forks counted once.
  std::size_t bytes_allocated() const;

 private:
  ModelConfig config_;
  std::int64_t max_positions_ = 0;
  DType storage_ = kDenseDType<T>;
  SeqId next_id_ = 0;
  std::map<SeqId, SequenceCache<T>> seqs_;
};

}  // namespace zebra
