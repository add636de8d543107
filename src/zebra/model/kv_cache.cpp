#include "zebra/model/kv_cache.hpp"

#include <algorithm>
#include <cstring>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {
std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }
}  // namespace

template <typename T>
KvCache<T>::KvCache(const ModelConfig& config, std::int64_t max_positions)
    : n_kv_heads_(config.n_kv_heads), head_dim_(config.head_dim), kv_dim_(config.kv_dim()),
      max_positions_(max_positions) {
  ZEBRA_CHECK(static_cast<std::int64_t>(config.layer_types.size()) == config.n_layers,
              "KvCache: the config's layer pattern is not resolved (", config.layer_types.size(), " layer types for ",
              config.n_layers, " layers)");
  ZEBRA_CHECK(max_positions >= 0, "KvCache: max_positions must be >= 0, got ", max_positions);
  layers_.resize(sz(config.n_layers));
  for (std::int64_t l = 0; l < config.n_layers; ++l) layers_[sz(l)].window = config.layer_window(l);
}

template <typename T>
const typename KvCache<T>::Layer& KvCache<T>::layer(std::int64_t l) const {
  ZEBRA_CHECK(l >= 0 && l < n_layers(), "KvCache: layer ", l, " outside [0, ", n_layers(), ")");
  return layers_[sz(l)];
}

template <typename T>
std::int64_t KvCache<T>::first_held(std::int64_t l) const {
  const Layer& a = layer(l);
  return a.window == kGlobalWindow ? 0 : std::max<std::int64_t>(0, n_past_ - a.window);
}

template <typename T>
std::int64_t KvCache<T>::row_of(const Layer& a, std::int64_t p) const {
  return a.window == kGlobalWindow ? p : p % a.window;
}

// Copies rows [0, n) of every head between head-major buffers of dst_rows and src_rows rows per head.
template <typename T>
void KvCache<T>::copy_rows(T* dst, std::int64_t dst_rows, const T* src, std::int64_t src_rows, std::int64_t n) const {
  if (n <= 0) return;
  for (std::int64_t g = 0; g < n_kv_heads_; ++g) {
    std::memcpy(dst + g * dst_rows * head_dim_, src + g * src_rows * head_dim_, sz(n * head_dim_) * sizeof(T));
  }
}

// Reallocates to `rows` rows per head, keeping rows [0, old rows). Ring slots stay valid: a local layer only
// grows while no position has reached its window yet, so every live position p sits in row p either way.
template <typename T>
void KvCache<T>::grow(Layer& a, std::int64_t rows) {
  if (rows <= a.rows) return;
  AlignedBuffer<T> k(sz(rows * kv_dim_)), v(sz(rows * kv_dim_));
  copy_rows(k.data(), rows, a.k.data(), a.rows, a.rows);
  copy_rows(v.data(), rows, a.v.data(), a.rows, a.rows);
  a.k.swap(k);
  a.v.swap(v);
  a.rows = rows;
}

template <typename T>
void KvCache<T>::reserve(std::int64_t n) {
  ZEBRA_CHECK(n >= 0, "KvCache::reserve: n must be >= 0, got ", n);
  const std::int64_t need = n_past_ + n;
  if (max_positions_ > 0) {
    ZEBRA_CHECK(need <= max_positions_, "the context is full: ", n_past_, " positions cached + ", n,
                " new > the maximum context of ", max_positions_, " positions");
  }
  for (Layer& a : layers_) {
    if (a.window == kGlobalWindow) {
      if (need <= a.rows) continue;
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
void KvCache<T>::write(std::int64_t l, std::int64_t p0, std::int64_t n, const T* k, const T* v,
                       std::int64_t stride) {
  ZEBRA_CHECK(p0 == n_past_, "KvCache::write: positions must be written in order: p0 ", p0, " but n_past ",
              n_past_);
  layer(l);  // range check
  Layer& a = layers_[sz(l)];
  ZEBRA_CHECK(n >= 0 && std::min(p0 + n, a.window) <= a.rows,
              "KvCache::write: no room for positions [", p0, ", ", p0 + n, ") in layer ", l, " (", a.rows,
              " rows; call reserve first)");
  // A local layer keeps only the last `window` of the new positions.
  const std::int64_t first = a.window == kGlobalWindow ? p0 : std::max(p0, p0 + n - a.window);
  const std::size_t width = sz(head_dim_) * sizeof(T);
  for (std::int64_t p = first; p < p0 + n; ++p) {
    const std::int64_t row = row_of(a, p);
    for (std::int64_t g = 0; g < n_kv_heads_; ++g) {
      std::memcpy(a.k.data() + (g * a.rows + row) * head_dim_, k + (p - p0) * stride + g * head_dim_, width);
      std::memcpy(a.v.data() + (g * a.rows + row) * head_dim_, v + (p - p0) * stride + g * head_dim_, width);
    }
  }
}

template <typename T>
void KvCache<T>::advance(std::int64_t n) {
  ZEBRA_CHECK(n >= 0, "KvCache::advance: n must be >= 0, got ", n);
  n_past_ += n;
}

template <typename T>
typename KvCache<T>::Snapshot KvCache<T>::snapshot() const {
  Snapshot s;
  s.n_past = n_past_;
  s.rows.assign(layers_.size(), 0);
  s.k.resize(layers_.size());
  s.v.resize(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const Layer& a = layers_[l];
    if (a.window == kGlobalWindow) continue;
    s.rows[l] = a.rows;
    s.k[l].assign(a.k.begin(), a.k.end());
    s.v[l].assign(a.v.begin(), a.v.end());
  }
  return s;
}

template <typename T>
void KvCache<T>::restore(const Snapshot& s) {
  ZEBRA_CHECK(s.n_past <= n_past_ && s.k.size() == layers_.size() && s.v.size() == layers_.size() &&
                  s.rows.size() == layers_.size(),
              "KvCache::restore: the snapshot (n_past ", s.n_past, ", ", s.k.size(),
              " layers) was not taken from this cache at an earlier point (n_past ", n_past_, ", ", layers_.size(),
              " layers)");
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    Layer& a = layers_[l];
    if (a.window == kGlobalWindow) continue;
    // The ring may have grown since (it grows only below its window, where row = position): the old rows
    // go back to the same rows of each head.
    ZEBRA_CHECK(s.rows[l] <= a.rows && s.k[l].size() == sz(s.rows[l] * kv_dim_) && s.v[l].size() == s.k[l].size(),
                "KvCache::restore: the snapshot's ring of layer ", l, " does not fit the cache's");
    copy_rows(a.k.data(), a.rows, s.k[l].data(), s.rows[l], s.rows[l]);
    copy_rows(a.v.data(), a.rows, s.v[l].data(), s.rows[l], s.rows[l]);
  }
  n_past_ = s.n_past;
}

template <typename T>
KvSource<T> KvCache<T>::past_source(std::int64_t l) const {
  const Layer& a = layer(l);
  KvSource<T> s;
  s.k = a.k.data();
  s.v = a.v.data();
  s.stride = head_dim_;
  s.head_stride = a.rows * head_dim_;
  s.ring = a.window == kGlobalWindow ? 0 : a.window;
  s.begin = first_held(l);
  return s;
}

template <typename T>
std::int64_t KvCache<T>::offset_of(std::int64_t l, std::int64_t p, std::int64_t g) const {
  const Layer& a = layer(l);
  ZEBRA_CHECK(p >= first_held(l) && p < n_past_, "KvCache: position ", p, " is not held by layer ", l, " (holds [",
              first_held(l), ", ", n_past_, "))");
  ZEBRA_CHECK(g >= 0 && g < n_kv_heads_, "KvCache: kv head ", g, " outside [0, ", n_kv_heads_, ")");
  return (g * a.rows + row_of(a, p)) * head_dim_;
}

template <typename T>
const T* KvCache<T>::key(std::int64_t l, std::int64_t p, std::int64_t g) const {
  return layers_[sz(l)].k.data() + offset_of(l, p, g);
}

template <typename T>
const T* KvCache<T>::value(std::int64_t l, std::int64_t p, std::int64_t g) const {
  return layers_[sz(l)].v.data() + offset_of(l, p, g);
}

template <typename T>
std::size_t KvCache<T>::bytes_allocated() const {
  std::size_t rows = 0;
  for (const Layer& a : layers_) rows += sz(a.rows);
  return rows * 2 * sz(kv_dim_) * sizeof(T);
}

template <typename T>
std::size_t KvCache<T>::bytes_used() const {
  std::size_t rows = 0;
  for (const Layer& a : layers_) rows += sz(std::min(n_past_, a.window));
  return rows * 2 * sz(kv_dim_) * sizeof(T);
}

template <typename T>
std::size_t KvCache<T>::full_attention_bytes(std::int64_t n_positions) const {
  return layers_.size() * sz(n_positions) * 2 * sz(kv_dim_) * sizeof(T);
}

template class KvCache<float>;
template class KvCache<double>;

}  // namespace zebra
