#include "zebra/model/kv_cache.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <type_traits>

#include "zebra/ops/convert.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {
std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }
}  // namespace

template <typename T>
SequenceCache<T>::SequenceCache(const ModelConfig& config, std::int64_t max_positions, DType storage)
    : n_kv_heads_(config.n_kv_heads), head_dim_(config.head_dim), kv_dim_(config.kv_dim()),
      max_positions_(max_positions), storage_(storage), value_bytes_(dtype_size(storage)) {
  ZEBRA_CHECK(storage == kDenseDType<T> || (sizeof(T) == 4 && (storage == DType::kF16 || storage == DType::kBF16)),
              "KV cache: cannot store ", sizeof(T) == 4 ? "float" : "double", " keys and values as ",
              to_string(storage), " (expected ", sizeof(T) == 4 ? "F32, F16 or BF16" : "F64", ")");
  ZEBRA_CHECK(static_cast<std::int64_t>(config.layer_types.size()) == config.n_layers,
              "SequenceCache: the config's layer pattern is not resolved (", config.layer_types.size(),
              " layer types for ", config.n_layers, " layers)");
  ZEBRA_CHECK(max_positions >= 0, "SequenceCache: max_positions must be >= 0, got ", max_positions);
  layers_.resize(sz(config.n_layers));
  for (std::int64_t l = 0; l < config.n_layers; ++l) layers_[sz(l)].window = config.layer_window(l);
}

template <typename T>
const typename SequenceCache<T>::Layer& SequenceCache<T>::layer(std::int64_t l) const {
  ZEBRA_CHECK(l >= 0 && l < n_layers(), "SequenceCache: layer ", l, " outside [0, ", n_layers(), ")");
  return layers_[sz(l)];
}

template <typename T>
std::int64_t SequenceCache<T>::first_held(std::int64_t l) const {
  const Layer& a = layer(l);
  return a.window == kGlobalWindow ? 0 : std::max<std::int64_t>(0, n_past_ - a.window);
}

template <typename T>
std::int64_t SequenceCache<T>::row_of(const Layer& a, std::int64_t p) const {
  return a.window == kGlobalWindow ? p : p % a.window;
}

// Copies rows [0, n) of every head between head-major buffers of dst_rows and src_rows rows per head.
template <typename T>
void SequenceCache<T>::copy_rows(std::uint8_t* dst, std::int64_t dst_rows, const std::uint8_t* src,
                                 std::int64_t src_rows, std::int64_t n) const {
  if (n <= 0) return;
  const std::size_t row = sz(head_dim_) * value_bytes_;
  for (std::int64_t g = 0; g < n_kv_heads_; ++g) {
    std::memcpy(dst + sz(g * dst_rows) * row, src + sz(g * src_rows) * row, sz(n) * row);
  }
}

// Reallocates to `rows` rows per head, keeping rows [0, old rows). Ring slots stay valid: a local layer only
// grows while no position has reached its window yet, so every live position p sits in row p either way.
template <typename T>
void SequenceCache<T>::grow(Layer& a, std::int64_t rows) {
  if (rows <= a.rows) return;
  auto k = std::make_shared<AlignedBuffer<std::uint8_t>>(sz(rows * kv_dim_) * value_bytes_);
  auto v = std::make_shared<AlignedBuffer<std::uint8_t>>(sz(rows * kv_dim_) * value_bytes_);
  if (a.rows > 0) {
    // Only live rows matter: a global layer's rows past n_past may belong to another sharer of the buffer.
    const std::int64_t live = a.window == kGlobalWindow ? std::min(a.rows, n_past_) : a.rows;
    copy_rows(k->data(), rows, a.k->data(), a.rows, live);
    copy_rows(v->data(), rows, a.v->data(), a.rows, live);
  }
  a.k = std::move(k);
  a.v = std::move(v);
  a.rows = rows;
}

// Copy on extend: a global buffer shared with a fork is copied (its live rows) before this sequence writes into it.
template <typename T>
void SequenceCache<T>::make_private(Layer& a) {
  if (a.k == nullptr || (a.k.use_count() == 1 && a.v.use_count() == 1)) return;
  const std::int64_t live = std::min(a.rows, n_past_);
  auto k = std::make_shared<AlignedBuffer<std::uint8_t>>(a.k->size());
  auto v = std::make_shared<AlignedBuffer<std::uint8_t>>(a.v->size());
  copy_rows(k->data(), a.rows, a.k->data(), a.rows, live);
  copy_rows(v->data(), a.rows, a.v->data(), a.rows, live);
  a.k = std::move(k);
  a.v = std::move(v);
}

template <typename T>
SequenceCache<T> SequenceCache<T>::fork() const {
  SequenceCache<T> f = *this;  // shares every buffer
  for (Layer& a : f.layers_) {
    if (a.window == kGlobalWindow || a.k == nullptr) continue;
    a.k = std::make_shared<AlignedBuffer<std::uint8_t>>(*a.k);  // rings: private copies
    a.v = std::make_shared<AlignedBuffer<std::uint8_t>>(*a.v);
  }
  return f;
}

template <typename T>
void SequenceCache<T>::reserve(std::int64_t n) {
  ZEBRA_CHECK(n >= 0, "SequenceCache::reserve: n must be >= 0, got ", n);
  const std::int64_t need = n_past_ + n;
  if (max_positions_ > 0) {
    ZEBRA_CHECK(need <= max_positions_, "the context is full: ", n_past_, " positions cached + ", n,
                " new > the maximum context of ", max_positions_, " positions");
  }
  for (Layer& a : layers_) {
    if (a.window == kGlobalWindow) {
      if (need <= a.rows) {
        if (n > 0) make_private(a);
        continue;
      }
      // Growing by a quarter keeps the copying amortised O(1) per position (each row is copied about 4 times
      // over the cache's life) while wasting at most a fifth of the buffer; rounding to 256 rows keeps a
      // token-by-token decode from reallocating often at small sizes. The limit caps it.
      std::int64_t rows = std::max(need, a.rows + a.rows / 4);
      rows = (rows + 255) / 256 * 256;
      if (max_positions_ > 0) rows = std::min(rows, max_positions_);
      grow(a, rows);
    } else {
      if (a.rows >= a.window || need <= a.rows) continue;
      // Grow the ring only while no position has wrapped: below the window, row = position.
      std::int64_t rows = std::min(a.window, std::max(need, 2 * a.rows));
      grow(a, rows);
    }
  }
}

template <typename T>
void SequenceCache<T>::write(std::int64_t l, std::int64_t p0, std::int64_t n, const T* k, const T* v,
                             std::int64_t stride) {
  ZEBRA_CHECK(p0 == n_past_, "SequenceCache::write: positions must be written in order: p0 ", p0, " but n_past ",
              n_past_);
  layer(l);  // range check
  Layer& a = layers_[sz(l)];
  ZEBRA_CHECK(n >= 0 && std::min(p0 + n, a.window) <= a.rows, "SequenceCache::write: no room for positions [", p0, ", ",
              p0 + n, ") in layer ", l, " (", a.rows, " rows; call reserve first)");
  // A local layer keeps only the last `window` of the new positions.
  const std::int64_t first = a.window == kGlobalWindow ? p0 : std::max(p0, p0 + n - a.window);
  if (n > 0) make_private(a);
  std::uint8_t* kd = a.k->data();
  std::uint8_t* vd = a.v->data();
  // One head's row: copied as it is, or rounded to the 16-bit store.
  auto put = [&](std::uint8_t* dst, const T* src) {
    if (storage_ == kDenseDType<T>) {
      std::memcpy(dst, src, sz(head_dim_) * sizeof(T));
    } else if constexpr (std::is_same_v<T, float>) {
      convert_from_f32(storage_, dst, src, head_dim_, ComputeOptions{.threads = 1});
    }
  };
  for (std::int64_t p = first; p < p0 + n; ++p) {
    const std::int64_t row = row_of(a, p);
    for (std::int64_t g = 0; g < n_kv_heads_; ++g) {
      const std::size_t at = sz((g * a.rows + row) * head_dim_) * value_bytes_;
      put(kd + at, k + (p - p0) * stride + g * head_dim_);
      put(vd + at, v + (p - p0) * stride + g * head_dim_);
    }
  }
}

template <typename T>
void SequenceCache<T>::advance(std::int64_t n) {
  ZEBRA_CHECK(n >= 0, "SequenceCache::advance: n must be >= 0, got ", n);
  n_past_ += n;
}

template <typename T>
typename SequenceCache<T>::Snapshot SequenceCache<T>::snapshot() const {
  Snapshot s;
  s.n_past = n_past_;
  s.rows.assign(layers_.size(), 0);
  s.k.resize(layers_.size());
  s.v.resize(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const Layer& a = layers_[l];
    if (a.window == kGlobalWindow || a.k == nullptr) continue;
    s.rows[l] = a.rows;
    s.k[l].assign(a.k->begin(), a.k->end());
    s.v[l].assign(a.v->begin(), a.v->end());
  }
  return s;
}

template <typename T>
void SequenceCache<T>::restore(const Snapshot& s) {
  ZEBRA_CHECK(s.n_past <= n_past_ && s.k.size() == layers_.size() && s.v.size() == layers_.size() &&
                  s.rows.size() == layers_.size(),
              "SequenceCache::restore: the snapshot (n_past ", s.n_past, ", ", s.k.size(),
              " layers) was not taken from this cache at an earlier point (n_past ", n_past_, ", ", layers_.size(),
              " layers)");
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    Layer& a = layers_[l];
    if (a.window == kGlobalWindow) continue;
    // The ring may have grown since (it grows only below its window, where row = position): the old rows
    // go back to the same rows of each head.
    ZEBRA_CHECK(s.rows[l] <= a.rows && s.k[l].size() == sz(s.rows[l] * kv_dim_) * value_bytes_ &&
                    s.v[l].size() == s.k[l].size(),
                "SequenceCache::restore: the snapshot's ring of layer ", l, " does not fit the cache's");
    if (s.rows[l] == 0) continue;
    copy_rows(a.k->data(), a.rows, s.k[l].data(), s.rows[l], s.rows[l]);
    copy_rows(a.v->data(), a.rows, s.v[l].data(), s.rows[l], s.rows[l]);
  }
  n_past_ = s.n_past;
}

template <typename T>
KvSource<T> SequenceCache<T>::past_source(std::int64_t l) const {
  const Layer& a = layer(l);
  KvSource<T> s;
  s.k = a.k == nullptr ? nullptr : a.k->data();
  s.v = a.v == nullptr ? nullptr : a.v->data();
  s.dtype = storage_;
  s.stride = head_dim_;
  s.head_stride = a.rows * head_dim_;
  s.ring = a.window == kGlobalWindow ? 0 : a.window;
  s.begin = first_held(l);
  return s;
}

template <typename T>
std::int64_t SequenceCache<T>::offset_of(std::int64_t l, std::int64_t p, std::int64_t g) const {
  const Layer& a = layer(l);
  ZEBRA_CHECK(p >= first_held(l) && p < n_past_, "SequenceCache: position ", p, " is not held by layer ", l,
              " (holds [", first_held(l), ", ", n_past_, "))");
  ZEBRA_CHECK(g >= 0 && g < n_kv_heads_, "SequenceCache: kv head ", g, " outside [0, ", n_kv_heads_, ")");
  return (g * a.rows + row_of(a, p)) * head_dim_;
}

template <typename T>
std::vector<T> SequenceCache<T>::widened(const AlignedBuffer<std::uint8_t>& buf, std::int64_t offset) const {
  std::vector<T> out(sz(head_dim_));
  convert_floating(storage_, buf.data() + sz(offset) * value_bytes_, out.data(), out.size());
  return out;
}

template <typename T>
std::vector<T> SequenceCache<T>::key(std::int64_t l, std::int64_t p, std::int64_t g) const {
  return widened(*layers_[sz(l)].k, offset_of(l, p, g));
}

template <typename T>
std::vector<T> SequenceCache<T>::value(std::int64_t l, std::int64_t p, std::int64_t g) const {
  return widened(*layers_[sz(l)].v, offset_of(l, p, g));
}

template <typename T>
std::size_t SequenceCache<T>::bytes_allocated() const {
  std::size_t rows = 0;
  for (const Layer& a : layers_) rows += sz(a.rows);
  return rows * 2 * sz(kv_dim_) * value_bytes_;
}

template <typename T>
std::size_t SequenceCache<T>::bytes_used() const {
  std::size_t rows = 0;
  for (const Layer& a : layers_) rows += sz(std::min(n_past_, a.window));
  return rows * 2 * sz(kv_dim_) * value_bytes_;
}

template <typename T>
std::size_t SequenceCache<T>::full_attention_bytes(std::int64_t n_positions) const {
  return layers_.size() * sz(n_positions) * 2 * sz(kv_dim_) * value_bytes_;
}

template <typename T>
SeqId KvCache<T>::add_sequence() {
  const SeqId id = next_id_++;
  seqs_.emplace(id, SequenceCache<T>(config_, max_positions_, storage_));
  return id;
}

template <typename T>
void KvCache<T>::remove_sequence(SeqId id) {
  ZEBRA_CHECK(seqs_.erase(id) == 1, "KvCache: no sequence ", id);
}

template <typename T>
SeqId KvCache<T>::fork_sequence(SeqId from) {
  SequenceCache<T> f = sequence(from).fork();
  const SeqId id = next_id_++;
  seqs_.emplace(id, std::move(f));
  return id;
}

template <typename T>
std::vector<SeqId> KvCache<T>::sequences() const {
  std::vector<SeqId> ids;
  for (const auto& [id, s] : seqs_) ids.push_back(id);
  return ids;
}

template <typename T>
SequenceCache<T>& KvCache<T>::sequence(SeqId id) {
  auto it = seqs_.find(id);
  ZEBRA_CHECK(it != seqs_.end(), "KvCache: no sequence ", id);
  return it->second;
}

template <typename T>
const SequenceCache<T>& KvCache<T>::sequence(SeqId id) const {
  auto it = seqs_.find(id);
  ZEBRA_CHECK(it != seqs_.end(), "KvCache: no sequence ", id);
  return it->second;
}

template <typename T>
std::size_t KvCache<T>::bytes_allocated() const {
  std::set<const void*> seen;
  std::size_t bytes = 0;
  for (const auto& [id, s] : seqs_) {
    s.for_each_buffer([&](const AlignedBuffer<std::uint8_t>* k, const AlignedBuffer<std::uint8_t>* v, std::int64_t) {
      for (const AlignedBuffer<std::uint8_t>* b : {k, v}) {
        if (b != nullptr && seen.insert(b).second) bytes += b->size();
      }
    });
  }
  return bytes;
}

template class SequenceCache<float>;
template class SequenceCache<double>;
template class KvCache<float>;
template class KvCache<double>;

}  // namespace zebra
