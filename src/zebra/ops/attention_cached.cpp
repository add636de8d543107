// Cached attention (see attention_cached.hpp for layouts and the two key stores).
//
// Per task (KV head, query tile of up to kQueryTile rows starting at row r0; the rows of all query heads
// reading that KV head are processed together, so a key tile is gathered once per task):
//   Q' = Q * scale; m = -inf, l = 0, O = 0
//   for each key tile [j0, j0 + kTile) with j0 a multiple of kTile, from the tile holding the first key
//   the tile's first query sees up to the tile's last query:
//     K^T tile gathered row by row (each row from the past store's ring or from the new keys) into [hd, kTile]
//     S = Q' K^T (+ ALiBi); per row over its visible columns (mask.hpp):
//       m_new = max(m, max S); P = exp(S - m_new); l = l * exp(m - m_new) + sum P; O = O * exp(m - m_new) + P V
//   out = O / l
// Tiles are aligned to absolute positions, and each row's steps use only that row's data, so a query's
// result is the same whichever chunk (and tile of that chunk) it was computed in.
// l is accumulated in double, as in ops/attention.cpp. Work: one score entry per visible (query, key)
// pair plus at most one partly masked tile per row at each end, so a local layer costs O(n_new * window).
#include "zebra/ops/attention_cached.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <type_traits>

#include "zebra/ops/mask.hpp"
#include "zebra/ops/simd/decode_attention.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

constexpr std::int64_t kTile = kAttentionCachedTile;  // keys per tile
constexpr std::int64_t kQueryTile = 32;               // queries per task

// exp(x) for x in [kExpFloor, 0], written so that a loop of it vectorizes (std::exp(float) does not
// without -ffast-math). x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2, ln2 split in a high part
// with few mantissa bits (n * high is exact) and a low part; exp(r) by its Taylor series to degree 7
// (truncation |r|^8 / 8! < 5.2e-9, below float's rounding unit 6e-8); times 2^n built from the exponent
// bits. Arguments are clamped to [kExpFloor, 0] by the caller in a separate loop (a clamp inside the
// polynomial loop blocks g++'s vectorizer). exp(kExpFloor) ~ 1.8e-35 stands in for anything smaller: a
// row's softmax sum is >= 1 (its maximum contributes exp(0)), so the error is below 1e-34 relative.
constexpr float kExpFloor = -80.0f;

inline float exp_nonpositive(float x) {
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693145751953125f;    // ln2 high part: 0.693145751953125 has 12 significant bits
  r = r - n * 1.42860682030941723212e-6f;  // ln2 - high part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // n in [-116, 0]: 2^n is a normal float.
  return p * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}

// s[c] = exp(s[c] - shift) for c in [c0, c1); s[c] <= shift.
inline void exp_minus(float* __restrict s, std::int64_t c0, std::int64_t c1, float shift) {
  for (std::int64_t c = c0; c < c1; ++c) s[c] = std::max(s[c] - shift, kExpFloor);
  for (std::int64_t c = c0; c < c1; ++c) s[c] = exp_nonpositive(s[c]);
}
inline void exp_minus(double* __restrict s, std::int64_t c0, std::int64_t c1, double shift) {
  for (std::int64_t c = c0; c < c1; ++c) s[c] = std::exp(s[c] - shift);
}
inline float exp_scalar(float x) { return exp_nonpositive(std::max(x, kExpFloor)); }
inline double exp_scalar(double x) { return std::exp(x); }

struct Dims {
  std::int64_t n_heads, n_kv_heads, head_dim, group, q_stride, new_stride, past_stride, past_head_stride, out_stride;
  std::int64_t n_new, p0, window;
  double scale;
};

template <typename T>
struct Scratch {
  // rows = group * kQueryTile: the query rows of every head reading one KV head.
  Scratch(std::int64_t hd, std::int64_t rows)
      : q(static_cast<std::size_t>(rows * hd)), kt(static_cast<std::size_t>(hd * kTile)),
        s(static_cast<std::size_t>(kTile)), o(static_cast<std::size_t>(rows * hd)), m(static_cast<std::size_t>(rows)),
        l(static_cast<std::size_t>(rows)), vt(static_cast<std::size_t>(kTile * hd)) {}
  AlignedBuffer<T> q;       // [rows, hd] queries times scale
  AlignedBuffer<T> kt;      // [hd, kTile] key tile, transposed (zero outside the loaded columns)
  AlignedBuffer<T> s;       // [kTile] scores of one row, then its probabilities
  AlignedBuffer<T> o;       // [rows, hd] unnormalised output
  AlignedBuffer<T> m;       // [rows] running row maximum
  AlignedBuffer<double> l;  // [rows] running row sum
  AlignedBuffer<T> vt;      // [kTile, hd] value rows of the tile
};

// Copies the hd values of key/value position j for kv head kvh into dst: from the new block (T) or from the past
// store (its dtype, widened).
template <typename T>
inline void gather_row(T* __restrict dst, std::int64_t dst_stride, const T* fresh, const void* past, const Dims& d,
                       const KvSource<T>& src, std::int64_t j, std::int64_t kvh, std::int64_t hd) {
  if (j >= d.p0) {
    const T* p = fresh + (j - d.p0) * d.new_stride + kvh * d.head_dim;
    for (std::int64_t e = 0; e < hd; ++e) dst[e * dst_stride] = p[e];
    return;
  }
  const std::int64_t row = src.ring > 0 ? j % src.ring : j;
  const std::int64_t at = kvh * d.past_head_stride + row * d.past_stride;
  if (src.dtype == kDenseDType<T>) {
    const T* p = static_cast<const T*>(past) + at;
    for (std::int64_t e = 0; e < hd; ++e) dst[e * dst_stride] = p[e];
  } else {
    const std::uint16_t* p = static_cast<const std::uint16_t*>(past) + at;
    const bool f16 = src.dtype == DType::kF16;
    for (std::int64_t e = 0; e < hd; ++e)
      dst[e * dst_stride] = static_cast<T>(f16 ? f16_to_float(p[e]) : bf16_to_float(p[e]));
  }
}

// One (kv head kvh, query rows [r0, r0 + nq)) for all `group` query heads reading that kv head, so each key
// tile is gathered once for all of them. Virtual row v = g * nq + r is head kvh * group + g, query r0 + r.
// HD = head_dim known at compile time, or 0.
template <typename T, int HD>
void cached_tile(T* out, const T* q, const T* k_new, const T* v_new, const KvSource<T>& past, const Dims& d,
                 const double* alibi_slopes, std::int64_t kvh, std::int64_t r0, Scratch<T>& w) {
  const std::int64_t hd = HD > 0 ? HD : d.head_dim;
  const std::int64_t nq = std::min(kQueryTile, d.n_new - r0);
  const std::int64_t rows = d.group * nq;
  const T scale = static_cast<T>(d.scale);
  const bool alibi = alibi_slopes != nullptr;
  const std::int64_t i_first = d.p0 + r0, i_last = d.p0 + r0 + nq - 1;

  for (std::int64_t v = 0; v < rows; ++v) {
    const std::int64_t h = kvh * d.group + v / nq, r = v % nq;
    const T* src = q + (r0 + r) * d.q_stride + h * hd;
    T* dst = w.q.data() + v * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = src[c] * scale;
    w.m[static_cast<std::size_t>(v)] = -std::numeric_limits<T>::infinity();
    w.l[static_cast<std::size_t>(v)] = 0.0;
  }
  std::fill(w.o.begin(), w.o.begin() + rows * hd, T(0));

  // first_visible_key grows with i (no document mask here), so the first row sees the earliest key.
  const std::int64_t key_lo = first_visible_key(i_first, d.window);
  for (std::int64_t j0 = key_lo / kTile * kTile; j0 <= i_last; j0 += kTile) {
    const std::int64_t ja = std::max(j0, key_lo), jb = std::min(j0 + kTile, i_last + 1);  // loaded keys [ja, jb)
    // Gather K^T [hd, kTile] and the value rows; columns outside [ja, jb) are zero / unused.
    T* kt = w.kt.data();
    for (std::int64_t c = 0; c < kTile; ++c) {
      const std::int64_t j = j0 + c;
      if (j < ja || j >= jb) {
        for (std::int64_t e = 0; e < hd; ++e) kt[e * kTile + c] = T(0);
        continue;
      }
      gather_row(kt + c, kTile, k_new, past.k, d, past, j, kvh, hd);
      gather_row(w.vt.data() + c * hd, 1, v_new, past.v, d, past, j, kvh, hd);
    }
    for (std::int64_t v = 0; v < rows; ++v) {
      const std::int64_t r = v % nq, i = i_first + r;
      const std::int64_t lo = std::max(ja, first_visible_key(i, d.window)) - j0;
      const std::int64_t hi = std::min(jb, i + 1) - j0;
      if (lo >= hi) continue;  // this row sees nothing of the tile
      // Score row = q' . K^T over all kTile columns (a fixed width vectorizes; masked columns are ignored below).
      T* __restrict srow = w.s.data();
      const T* __restrict qrow = w.q.data() + v * hd;
      for (std::int64_t c = 0; c < kTile; ++c) srow[c] = T(0);
      for (std::int64_t e = 0; e < hd; ++e) {
        const T qe = qrow[e];
        const T* __restrict kte = kt + e * kTile;
        for (std::int64_t c = 0; c < kTile; ++c) srow[c] += qe * kte[c];
      }
      if (alibi) {
        const T slope = static_cast<T>(alibi_slopes[kvh * d.group + v / nq]);
        for (std::int64_t c = lo; c < hi; ++c) srow[c] -= slope * static_cast<T>(i - j0 - c);
      }
      T mx = w.m[static_cast<std::size_t>(v)];
      for (std::int64_t c = lo; c < hi; ++c) mx = std::max(mx, srow[c]);
      const T alpha = exp_scalar(w.m[static_cast<std::size_t>(v)] - mx);  // ~0 on the row's first tile
      exp_minus(srow, lo, hi, mx);
      double row_sum = 0.0;
      for (std::int64_t c = lo; c < hi; ++c) row_sum += static_cast<double>(srow[c]);
      // On the first tile l = 0 and O = 0, so whatever alpha is, the product is 0.
      w.l[static_cast<std::size_t>(v)] = w.l[static_cast<std::size_t>(v)] * static_cast<double>(alpha) + row_sum;
      w.m[static_cast<std::size_t>(v)] = mx;
      T* __restrict orow = w.o.data() + v * hd;
      if (alpha != T(1)) {
        for (std::int64_t e = 0; e < hd; ++e) orow[e] *= alpha;
      }
      const T* __restrict vt = w.vt.data();
      for (std::int64_t c = lo; c < hi; ++c) {
        const T p = srow[c];
        const T* __restrict vrow = vt + c * hd;
        for (std::int64_t e = 0; e < hd; ++e) orow[e] += p * vrow[e];
      }
    }
  }

  for (std::int64_t v = 0; v < rows; ++v) {
    const std::int64_t h = kvh * d.group + v / nq, r = v % nq;
    // l >= 1: every query sees itself, and its row maximum contributes exp(0) = 1.
    const T inv = static_cast<T>(1.0 / w.l[static_cast<std::size_t>(v)]);
    const T* orow = w.o.data() + v * hd;
    T* dst = out + (r0 + r) * d.out_stride + h * hd;
    for (std::int64_t e = 0; e < hd; ++e) dst[e] = orow[e] * inv;
  }
}

template <typename T, int HD>
void run_all(T* out, const T* q, const T* k_new, const T* v_new, const KvSource<T>& past, const Dims& d,
             const double* alibi_slopes, int threads) {
  const std::int64_t n_tiles = (d.n_new + kQueryTile - 1) / kQueryTile;
  const std::int64_t tasks = d.n_kv_heads * n_tiles;
  // Tiny calls (decoding a short context) are not worth waking the thread pool for.
  const std::int64_t visible = std::min(d.p0 + d.n_new, d.window);
  const bool parallel = tasks > 1 && d.n_new * visible * d.n_heads * d.head_dim >= (1 << 15);
#pragma omp parallel if (parallel) num_threads(threads)
  {
    Scratch<T> w(d.head_dim, d.group * std::min(kQueryTile, d.n_new));
#pragma omp for schedule(dynamic)
    for (std::int64_t t = 0; t < tasks; ++t) {
      const std::int64_t kvh = t % d.n_kv_heads, tile = t / d.n_kv_heads;
      cached_tile<T, HD>(out, q, k_new, v_new, past, d, alibi_slopes, kvh, tile * kQueryTile, w);
    }
  }
}

}  // namespace

template <typename T>
void attention_cached_forward(T* out, const T* q, const T* k_new, const T* v_new, std::int64_t n_new, std::int64_t p0,
                              const KvSource<T>& past, const CachedAttentionShape& shape, std::int64_t window,
                              const double* alibi_slopes, const ComputeOptions& options) {
  ZEBRA_CHECK(n_new >= 0 && p0 >= 0, "attention_cached: n_new and p0 must be >= 0, got ", n_new, " and ", p0);
  ZEBRA_CHECK(shape.head_dim > 0, "attention_cached: head_dim must be > 0, got ", shape.head_dim);
  ZEBRA_CHECK(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
              "attention_cached: n_heads must be a positive multiple of n_kv_heads, got n_heads=", shape.n_heads,
              " n_kv_heads=", shape.n_kv_heads);
  ZEBRA_CHECK(window >= 1, "attention_cached: window must be >= 1 (kGlobalWindow for global), got ", window);
  if (n_new == 0) return;
  Dims d{};
  d.n_heads = shape.n_heads;
  d.n_kv_heads = shape.n_kv_heads;
  d.head_dim = shape.head_dim;
  d.group = shape.n_heads / shape.n_kv_heads;
  d.out_stride = shape.n_heads * shape.head_dim;
  const std::int64_t kv_width = shape.n_kv_heads * shape.head_dim;
  d.q_stride = shape.q_stride == 0 ? d.out_stride : shape.q_stride;
  d.new_stride = shape.new_stride == 0 ? kv_width : shape.new_stride;
  d.past_stride = past.stride == 0 ? kv_width : past.stride;
  d.past_head_stride = past.head_stride == 0 ? shape.head_dim : past.head_stride;
  ZEBRA_CHECK(d.q_stride >= d.out_stride && d.new_stride >= kv_width &&
                  (past.head_stride != 0 ? d.past_stride >= shape.head_dim : d.past_stride >= kv_width),
              "attention_cached: row strides (q ", d.q_stride, ", new ", d.new_stride, ", past ", d.past_stride,
              ") must be at least the row widths (", d.out_stride, ", ", kv_width, ")");
  d.n_new = n_new;
  d.p0 = p0;
  d.window = window;
  d.scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  const std::int64_t needed = first_visible_key(p0, window);
  if (needed < p0) {
    ZEBRA_CHECK(past.k != nullptr && past.v != nullptr, "attention_cached: positions [", needed, ", ", p0,
                ") are visible but no past store was given");
    ZEBRA_CHECK(past.begin <= needed, "attention_cached: the past store starts at position ", past.begin,
                " but queries from position ", p0, " see keys from position ", needed);
    ZEBRA_CHECK(past.ring == 0 || past.ring >= p0 - needed, "attention_cached: a ring of ", past.ring,
                " rows cannot hold the ", p0 - needed, " visible past positions");
  }
  ZEBRA_CHECK(options.threads >= 0, "attention_cached: threads must be >= 0, got ", options.threads);
  ZEBRA_CHECK(past.dtype == kDenseDType<T> ||
                  (std::is_same_v<T, float> && (past.dtype == DType::kF16 || past.dtype == DType::kBF16)),
              "attention_cached: a ", sizeof(T) == 4 ? "float" : "double", " kernel cannot read a ",
              to_string(past.dtype), " KV store (float: F32, F16, BF16; double: F64)");
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  if constexpr (std::is_same_v<T, float>) {
    if (n_new <= simd::kDecodeMaxRows) {
      simd::DecodeAttentionArgs a;
      a.out = out;
      a.q = q;
      a.q_stride = d.q_stride;
      a.k_new = k_new;
      a.v_new = v_new;
      a.new_stride = d.new_stride;
      a.k_past = past.k;
      a.v_past = past.v;
      a.dtype = past.dtype;
      a.past_stride = d.past_stride;
      a.past_head_stride = d.past_head_stride;
      a.ring = past.ring;
      a.n_new = n_new;
      a.p0 = p0;
      a.window = window;
      a.n_heads = d.n_heads;
      a.n_kv_heads = d.n_kv_heads;
      a.head_dim = d.head_dim;
      a.out_stride = d.out_stride;
      a.alibi_slopes = alibi_slopes;
      a.scale = static_cast<float>(d.scale);
      // Tiny calls (a short context) are not worth waking the thread pool for.
      const std::int64_t visible = std::min(p0 + n_new, window);
      a.threads = n_new * visible * d.n_heads * d.head_dim >= (1 << 15) ? threads : 1;
      simd::decode_attention(a, options.simd);
      return;
    }
  }
  switch (shape.head_dim) {
    case 32: run_all<T, 32>(out, q, k_new, v_new, past, d, alibi_slopes, threads); break;
    case 64: run_all<T, 64>(out, q, k_new, v_new, past, d, alibi_slopes, threads); break;
    case 128: run_all<T, 128>(out, q, k_new, v_new, past, d, alibi_slopes, threads); break;
    default: run_all<T, 0>(out, q, k_new, v_new, past, d, alibi_slopes, threads); break;
  }
}

template void attention_cached_forward<float>(float*, const float*, const float*, const float*, std::int64_t,
                                              std::int64_t, const KvSource<float>&, const CachedAttentionShape&,
                                              std::int64_t, const double*, const ComputeOptions&);
template void attention_cached_forward<double>(double*, const double*, const double*, const double*, std::int64_t,
                                               std::int64_t, const KvSource<double>&, const CachedAttentionShape&,
                                               std::int64_t, const double*, const ComputeOptions&);

}  // namespace zebra
