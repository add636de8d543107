// Flash-style causal attention (see attention.hpp for layouts).
//
// Forward, per (batch, head, query tile [i0, i1)):
//   for each key tile [j0, j1) inside [min_r first_visible_key(i0 + r), i1):
//     S = (Q * scale) K^T (+ ALiBi)            S: [tile, tile]
//     m_new = max(m, rowmax S); P = exp(S - m_new)
//     l = l * exp(m - m_new) + rowsum P;  O = O * exp(m - m_new) + P V
//   out = O / l, lse = m + log(l)
// Entries a row may not see (mask.hpp) count as -inf: the per-row loops run over the row's visible
// column range [lo, hi) of the tile, so masked entries never enter max, sum or P V.
//
// Backward (FlashAttention-2), per (batch, kv head), one thread owning dK/dV of that kv head and dQ of
// the query heads reading it, so no two threads write the same element and the result does not depend
// on the thread count. For each query head of the group and each query tile it walks exactly the key
// tiles the forward pass walked:
//   P = exp(S - lse), dP = dO V^T, dS = P o (dP - D) with D = rowsum(dO o out)
//   dV += P^T dO, dK += dS^T (Q * scale), dQ += dS K * scale
// (masked entries of P and dS are explicit zeros there, for the transposed products). The backward pass
// thus has batch * n_kv_heads parallel tasks; with one sequence and fewer KV heads than cores some cores
// idle (splitting the key range with per-thread dK/dV partials would fix that, at a memory cost).
//
// Scratch per thread is a handful of [tile, tile] and [tile, head_dim] buffers. Every product is one
// routine, accumulate_rows (a row of the result += a weighted sum of rows of a row-major tile): K and V
// tiles are transposed into scratch for Q K^T and dO V^T, the others read rows of V, K, Q, dO as they are.
// Its inner loops run over contiguous columns, so they vectorize without reassociation; with the width
// known at compile time (head_dim 32/64/128, and the tile for scores) the accumulators stay in registers.
// Measured on the 2-core dev machine (AVX2, one thread, float, T 4096, hd 64): ~22-25 GFLOP/s forward,
// ~25-33 backward (global layers at the low end: K/V stream from L3); SIMD tuning is left to a later change.
#include "zebra/ops/attention.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "zebra/ops/mask.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

constexpr std::int64_t kTile = kAttentionTile;

// exp for softmax arguments (<= 0 up to rounding; -inf for "no previous maximum"). std::exp(float) does
// not vectorize without -ffast-math, and exp is evaluated once per score entry, so for float this is a
// branch-free version: x = n ln2 + r with |r| <= ln2/2, exp(r) by its Taylor polynomial to degree 7
// (truncation r^8/8! < 6e-9 relative, below float's 6e-8; measured worst error 7e-8 relative), times 2^n.
// 2^n is applied as two factors 2^(n/2) 2^(n - n/2), each a normal float, so arguments below about -104
// underflow smoothly to exactly 0. exp(0) is exactly 1.
//
// The argument must already lie in [kExpLow, kExpHigh]: clamping in the same loop as the polynomial
// stops g++ from vectorizing (under -ftrapping-math it will not if-convert the compare), so callers
// clamp in a separate loop (exp_shifted below) and the polynomial loop is straight-line code.
constexpr float kExpLow = -150.0f;  // exp(-150) underflows to 0 (and -inf clamps to here)
constexpr float kExpHigh = 88.0f;   // exp(88) ~ 1.65e38 < FLT_MAX

inline float exp_clamped(float x) {
  // Round to nearest by adding and subtracting 1.5 * 2^23 (exact: |x * log2e| < 2^22).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f;   // ln2 split in two (Cody-Waite): the high part times n is exact
  r = r - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t ni = static_cast<std::int32_t>(n);  // n in [-217, 127]
  const std::int32_t n1 = ni >> 1;
  const std::int32_t n2 = ni - n1;                       // n1, n2 in [-109, 64]: normal powers of two
  return p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
}

inline float softmax_exp(float x) { return exp_clamped(std::min(std::max(x, kExpLow), kExpHigh)); }

// The double kernel serves tests, gradient checks and fallbacks, where accuracy matters more than speed.
inline double softmax_exp(double x) { return std::exp(x); }

// s[c] = exp(s[c] - shift) for c in [c0, c1).
inline void exp_shifted(float* __restrict s, std::int64_t c0, std::int64_t c1, float shift) {
  for (std::int64_t c = c0; c < c1; ++c) s[c] = std::min(std::max(s[c] - shift, kExpLow), kExpHigh);
  for (std::int64_t c = c0; c < c1; ++c) s[c] = exp_clamped(s[c]);
}

inline void exp_shifted(double* __restrict s, std::int64_t c0, std::int64_t c1, double shift) {
  for (std::int64_t c = c0; c < c1; ++c) s[c] = std::exp(s[c] - shift);
}

// Shape with defaults resolved and every argument checked.
struct Dims {
  std::int64_t batch, seq_len, n_heads, n_kv_heads, head_dim, group;
  std::int64_t q_stride, kv_stride, out_stride;  // row strides of q, k/v, out
  std::int64_t window;
  double scale;
};

Dims resolve(const AttentionShape& shape, const AttentionMask& mask) {
  ZEBRA_CHECK(shape.batch >= 0 && shape.seq_len >= 0, "attention: batch and seq_len must be >= 0, got ",
              shape.batch, " and ", shape.seq_len);
  ZEBRA_CHECK(shape.head_dim > 0, "attention: head_dim must be > 0, got ", shape.head_dim);
  ZEBRA_CHECK(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
              "attention: n_heads must be a positive multiple of n_kv_heads, got n_heads=", shape.n_heads,
              " n_kv_heads=", shape.n_kv_heads);
  ZEBRA_CHECK(mask.window >= 1, "attention: window must be >= 1 (kGlobalWindow for global), got ", mask.window);
  Dims d{};
  d.batch = shape.batch;
  d.seq_len = shape.seq_len;
  d.n_heads = shape.n_heads;
  d.n_kv_heads = shape.n_kv_heads;
  d.head_dim = shape.head_dim;
  d.group = shape.n_heads / shape.n_kv_heads;
  d.out_stride = shape.n_heads * shape.head_dim;
  d.q_stride = shape.q_stride == 0 ? d.out_stride : shape.q_stride;
  d.kv_stride = shape.kv_stride == 0 ? shape.n_kv_heads * shape.head_dim : shape.kv_stride;
  ZEBRA_CHECK(d.q_stride >= d.out_stride, "attention: q_stride ", d.q_stride, " is less than n_heads*head_dim ",
              d.out_stride);
  ZEBRA_CHECK(d.kv_stride >= shape.n_kv_heads * shape.head_dim, "attention: kv_stride ", d.kv_stride,
              " is less than n_kv_heads*head_dim ", shape.n_kv_heads * shape.head_dim);
  d.window = mask.window;
  d.scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  // Every query must see itself (so the softmax denominator is > 0): 0 <= doc_start[t] <= t.
  if (mask.doc_start != nullptr) {
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t t = 0; t < d.seq_len; ++t) {
        std::int64_t s = mask.doc_start[b * d.seq_len + t];
        ZEBRA_CHECK(s >= 0 && s <= t, "attention: doc_start[", b, ", ", t, "] must lie in [0, ", t, "], got ", s);
      }
    }
  }
  return d;
}

// first_visible_key of each row of the query tile [i0, i0 + nq) into fvk[nq]; returns the smallest, which
// is where the tile's key range starts (it ends at i0 + nq). Both passes call this, so the backward pass
// visits exactly the key tiles the forward pass did.
std::int64_t tile_first_keys(std::int64_t* fvk, std::int64_t i0, std::int64_t nq, const Dims& d,
                             const std::int32_t* doc_start_row) {
  std::int64_t lowest = i0;
  for (std::int64_t r = 0; r < nq; ++r) {
    std::int64_t i = i0 + r;
    fvk[r] = first_visible_key(i, d.window, doc_start_row == nullptr ? 0 : doc_start_row[i]);
    lowest = std::min(lowest, fvk[r]);
  }
  return lowest;
}

// dst[hd, kTile] = src rows [j0, j0 + nk) of one head, transposed; columns >= nk are zero so that the
// score products can always run over kTile columns (a constant width keeps them in registers).
template <typename T>
void load_transposed(T* __restrict dst, const T* src, std::int64_t stride, std::int64_t nk, std::int64_t hd) {
  for (std::int64_t j = 0; j < nk; ++j) {
    const T* row = src + j * stride;
    for (std::int64_t c = 0; c < hd; ++c) dst[c * kTile + j] = row[c];
  }
  for (std::int64_t c = 0; c < hd; ++c) {
    for (std::int64_t j = nk; j < kTile; ++j) dst[c * kTile + j] = T(0);
  }
}

// The one product shape every step uses: for rows a < na,
//   acc[a * acc_stride + e] += sum over b in [lo[a], hi[a]) of x[a * xa + b * xb] * m[b * m_stride + e],  e < n
// (lo/hi null: b in [0, nb)). x is a tile of scores or probabilities (or of Q, read row by row), m a row-major
// tile. With a compile-time width N the accumulator row is held in up to 8 registers of 32 bytes (GCC/Clang
// generic vectors; g++ keeps a plain local array in memory instead) over the whole b loop, so the inner loop
// is one broadcast and 8 FMAs with a memory operand. N = 0 is the plain version for other head sizes.
template <typename T, int N>
void accumulate_rows(T* __restrict acc, std::int64_t acc_stride, const T* __restrict x, std::int64_t xa,
                     std::int64_t xb, const T* __restrict m, std::int64_t m_stride, std::int64_t na,
                     const std::int64_t* lo, const std::int64_t* hi, std::int64_t nb, std::int64_t n) {
  using Vec [[gnu::vector_size(32)]] = T;
  constexpr int kLanes = static_cast<int>(32 / sizeof(T));
  constexpr int kVecs = N / kLanes < 8 ? N / kLanes : 8;  // vectors per chunk of columns
  static_assert(N == 0 || (N % kLanes == 0 && N % (kVecs * kLanes) == 0));
  for (std::int64_t a = 0; a < na; ++a) {
    const std::int64_t b0 = lo == nullptr ? 0 : lo[a];
    const std::int64_t b1 = hi == nullptr ? nb : hi[a];
    if (b0 >= b1) continue;
    T* __restrict row = acc + a * acc_stride;
    const T* __restrict xrow = x + a * xa;
    if constexpr (N > 0) {
      for (int e0 = 0; e0 < N; e0 += kVecs * kLanes) {
        Vec r[kVecs];
        for (int v = 0; v < kVecs; ++v) std::memcpy(&r[v], row + e0 + v * kLanes, sizeof(Vec));
        for (std::int64_t b = b0; b < b1; ++b) {
          const T xv = xrow[b * xb];
          const T* __restrict mrow = m + b * m_stride + e0;
          for (int v = 0; v < kVecs; ++v) {
            Vec mv;
            std::memcpy(&mv, mrow + v * kLanes, sizeof(Vec));  // unaligned load
            r[v] += xv * mv;
          }
        }
        for (int v = 0; v < kVecs; ++v) std::memcpy(row + e0 + v * kLanes, &r[v], sizeof(Vec));
      }
    } else {
      for (std::int64_t b = b0; b < b1; ++b) {
        const T xv = xrow[b * xb];
        const T* __restrict mrow = m + b * m_stride;
        for (std::int64_t e = 0; e < n; ++e) row[e] += xv * mrow[e];
      }
    }
  }
}

// s[nq, kTile] = a[nq, hd] * bt[hd, kTile] (bt from load_transposed).
template <typename T>
void score_tile(T* s, const T* a, const T* bt, std::int64_t nq, std::int64_t hd) {
  std::fill(s, s + nq * kTile, T(0));
  accumulate_rows<T, static_cast<int>(kTile)>(s, kTile, a, hd, 1, bt, kTile, nq, nullptr, nullptr, hd, kTile);
}

// Adds the ALiBi bias -slope * (i - j) to srow[c] for columns c in [c0, c1) of a tile starting at key j0.
template <typename T>
void add_alibi(T* __restrict srow, std::int64_t c0, std::int64_t c1, std::int64_t i, std::int64_t j0, T slope) {
  for (std::int64_t c = c0; c < c1; ++c) srow[c] -= slope * static_cast<T>(i - j0 - c);
}

// Visible columns [lo[r], hi[r]) of each row r < nq of the query tile at i0 against the key tile [j0, j1)
// (lo = hi = 0 when the row sees none of it).
void row_ranges(std::int64_t* lo, std::int64_t* hi, const std::int64_t* fvk, std::int64_t i0, std::int64_t nq,
                std::int64_t j0, std::int64_t j1) {
  for (std::int64_t r = 0; r < nq; ++r) {
    const std::int64_t a = std::max(j0, fvk[r]), b = std::min(j1, i0 + r + 1);
    lo[r] = a < b ? a - j0 : 0;
    hi[r] = a < b ? b - j0 : 0;
  }
}

// For the transposed products (dK, dV): rows [lo[c], hi[c]) that can see column c < nk, a cover of the
// visible rows (exact when first_visible_key grows with the row, as it does for packed documents; any
// invisible entry inside the cover is an explicit zero in P and dS). Rows before the key (causal) are
// cut by lo; hi is one past the last row whose range starts at or before c.
void column_ranges(std::int64_t* lo, std::int64_t* hi, const std::int64_t* row_lo, const std::int64_t* row_hi,
                   std::int64_t i0, std::int64_t nq, std::int64_t j0, std::int64_t nk) {
  std::fill(hi, hi + nk, std::int64_t{0});
  for (std::int64_t r = 0; r < nq; ++r) {
    if (row_lo[r] < row_hi[r]) hi[row_lo[r]] = std::max(hi[row_lo[r]], r + 1);
  }
  std::int64_t run = 0;
  for (std::int64_t c = 0; c < nk; ++c) {
    run = std::max(run, hi[c]);
    hi[c] = run;
    lo[c] = std::clamp(j0 + c - i0, std::int64_t{0}, nq);
  }
}

template <typename T>
struct ForwardScratch {
  explicit ForwardScratch(std::int64_t hd)
      : q(static_cast<std::size_t>(kTile * hd)),
        kt(static_cast<std::size_t>(hd * kTile)),
        s(static_cast<std::size_t>(kTile * kTile)),
        o(static_cast<std::size_t>(kTile * hd)),
        m(static_cast<std::size_t>(kTile)),
        l(static_cast<std::size_t>(kTile)),
        fvk(static_cast<std::size_t>(kTile)),
        lo(static_cast<std::size_t>(kTile)),
        hi(static_cast<std::size_t>(kTile)) {}
  AlignedBuffer<T> q;       // [kTile, hd] query tile times scale
  AlignedBuffer<T> kt;      // [hd, kTile] key tile, transposed
  AlignedBuffer<T> s;       // [kTile, kTile] scores, then probabilities
  AlignedBuffer<T> o;       // [kTile, hd] unnormalised output
  AlignedBuffer<T> m;       // [kTile] running row maximum
  AlignedBuffer<double> l;  // [kTile] running row sum of exp(s - m)
  AlignedBuffer<std::int64_t> fvk, lo, hi;
};

// One (batch b, head h, query tile starting at i0) of the forward pass; HD = head_dim, or 0 for any.
template <typename T, int HD>
void forward_tile(T* out, T* lse, const T* q, const T* k, const T* v, const Dims& d, const AttentionMask& mask,
                  std::int64_t b, std::int64_t h, std::int64_t i0, ForwardScratch<T>& w, AttentionStats& stats) {
  const std::int64_t n = d.seq_len, hd = d.head_dim;
  const std::int64_t nq = std::min(kTile, n - i0);
  const std::int64_t i1 = i0 + nq;
  const std::int64_t kvh = h / d.group;
  const T scale = static_cast<T>(d.scale);
  const bool alibi = mask.alibi_slopes != nullptr;
  const T slope = alibi ? static_cast<T>(mask.alibi_slopes[h]) : T(0);
  const std::int32_t* doc_row = mask.doc_start == nullptr ? nullptr : mask.doc_start + b * n;
  const T* kbase = k + b * n * d.kv_stride + kvh * hd;
  const T* vbase = v + b * n * d.kv_stride + kvh * hd;

  for (std::int64_t r = 0; r < nq; ++r) {
    const T* src = q + (b * n + i0 + r) * d.q_stride + h * hd;
    T* dst = w.q.data() + r * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = src[c] * scale;
    w.m[r] = -std::numeric_limits<T>::infinity();
    w.l[r] = 0.0;
  }
  std::fill(w.o.begin(), w.o.begin() + nq * hd, T(0));
  const std::int64_t key_begin = tile_first_keys(w.fvk.data(), i0, nq, d, doc_row);

  for (std::int64_t j0 = key_begin; j0 < i1; j0 += kTile) {
    const std::int64_t j1 = std::min(j0 + kTile, i1);
    ++stats.key_tiles;
    stats.score_entries += nq * (j1 - j0);
    load_transposed(w.kt.data(), kbase + j0 * d.kv_stride, d.kv_stride, j1 - j0, hd);
    score_tile(w.s.data(), w.q.data(), w.kt.data(), nq, hd);
    row_ranges(w.lo.data(), w.hi.data(), w.fvk.data(), i0, nq, j0, j1);

    for (std::int64_t r = 0; r < nq; ++r) {
      const std::int64_t c0 = w.lo[r], c1 = w.hi[r];
      if (c0 >= c1) continue;  // nothing visible to this row in this tile
      T* __restrict srow = w.s.data() + r * kTile;
      if (alibi) add_alibi(srow, c0, c1, i0 + r, j0, slope);
      T mx = w.m[r];
      for (std::int64_t c = c0; c < c1; ++c) mx = std::max(mx, srow[c]);
      const T alpha = softmax_exp(w.m[r] - mx);  // 0 on this row's first visible tile (m = -inf)
      exp_shifted(srow, c0, c1, mx);
      double row_sum = 0.0;
      for (std::int64_t c = c0; c < c1; ++c) row_sum += static_cast<double>(srow[c]);
      w.l[r] = w.l[r] * static_cast<double>(alpha) + row_sum;
      w.m[r] = mx;
      if (alpha != T(1)) {
        T* __restrict orow = w.o.data() + r * hd;
        for (std::int64_t c = 0; c < hd; ++c) orow[c] *= alpha;
      }
    }
    // O += P V over each row's visible columns.
    accumulate_rows<T, HD>(w.o.data(), hd, w.s.data(), kTile, 1, vbase + j0 * d.kv_stride, d.kv_stride, nq,
                           w.lo.data(), w.hi.data(), 0, hd);
  }

  for (std::int64_t r = 0; r < nq; ++r) {
    const std::int64_t i = i0 + r;
    // l >= 1: the row's maximum contributes exp(0) = 1 (every query sees at least itself).
    const T inv = static_cast<T>(1.0 / w.l[r]);
    const T* orow = w.o.data() + r * hd;
    T* dst = out + (b * n + i) * d.out_stride + h * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = orow[c] * inv;
    lse[(b * d.n_heads + h) * n + i] = static_cast<T>(static_cast<double>(w.m[r]) + std::log(w.l[r]));
  }
}

template <typename T>
struct BackwardScratch {
  explicit BackwardScratch(std::int64_t hd)
      : q(static_cast<std::size_t>(kTile * hd)),
        dout(static_cast<std::size_t>(kTile * hd)),
        dq(static_cast<std::size_t>(kTile * hd)),
        kt(static_cast<std::size_t>(hd * kTile)),
        vt(static_cast<std::size_t>(hd * kTile)),
        s(static_cast<std::size_t>(kTile * kTile)),
        dp(static_cast<std::size_t>(kTile * kTile)),
        lse(static_cast<std::size_t>(kTile)),
        dsum(static_cast<std::size_t>(kTile)),
        fvk(static_cast<std::size_t>(kTile)),
        lo(static_cast<std::size_t>(kTile)),
        hi(static_cast<std::size_t>(kTile)),
        col_lo(static_cast<std::size_t>(kTile)),
        col_hi(static_cast<std::size_t>(kTile)) {}
  AlignedBuffer<T> q;     // [kTile, hd] query tile times scale
  AlignedBuffer<T> dout;  // [kTile, hd]
  AlignedBuffer<T> dq;    // [kTile, hd] dQ / scale
  AlignedBuffer<T> kt;    // [hd, kTile]
  AlignedBuffer<T> vt;    // [hd, kTile]
  AlignedBuffer<T> s;     // [kTile, kTile] scores, then P (zero where not visible)
  AlignedBuffer<T> dp;    // [kTile, kTile] dP, then dS (zero where not visible)
  AlignedBuffer<T> lse;   // [kTile]
  AlignedBuffer<T> dsum;  // [kTile] D = rowsum(dout o out)
  AlignedBuffer<std::int64_t> fvk, lo, hi, col_lo, col_hi;
};

// Query tile i0 of head h: adds its contributions to dK, dV (kv head of h) and writes its rows of dQ.
template <typename T, int HD>
void backward_tile(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                   const T* v, const Dims& d, const AttentionMask& mask, std::int64_t b, std::int64_t h,
                   std::int64_t i0, BackwardScratch<T>& w, AttentionStats& stats) {
  const std::int64_t n = d.seq_len, hd = d.head_dim;
  const std::int64_t nq = std::min(kTile, n - i0);
  const std::int64_t i1 = i0 + nq;
  const std::int64_t kvh = h / d.group;
  const T scale = static_cast<T>(d.scale);
  const bool alibi = mask.alibi_slopes != nullptr;
  const T slope = alibi ? static_cast<T>(mask.alibi_slopes[h]) : T(0);
  const std::int32_t* doc_row = mask.doc_start == nullptr ? nullptr : mask.doc_start + b * n;
  const std::int64_t kv_offset = b * n * d.kv_stride + kvh * hd;

  for (std::int64_t r = 0; r < nq; ++r) {
    const std::int64_t i = i0 + r;
    const T* qsrc = q + (b * n + i) * d.q_stride + h * hd;
    const T* dosrc = dout + (b * n + i) * d.out_stride + h * hd;
    const T* osrc = out + (b * n + i) * d.out_stride + h * hd;
    T* qdst = w.q.data() + r * hd;
    T* dodst = w.dout.data() + r * hd;
    double dsum = 0.0;
    for (std::int64_t c = 0; c < hd; ++c) {
      qdst[c] = qsrc[c] * scale;
      dodst[c] = dosrc[c];
      dsum += static_cast<double>(dosrc[c]) * static_cast<double>(osrc[c]);
    }
    w.dsum[r] = static_cast<T>(dsum);
    w.lse[r] = lse[(b * d.n_heads + h) * n + i];
  }
  std::fill(w.dq.begin(), w.dq.begin() + nq * hd, T(0));
  const std::int64_t key_begin = tile_first_keys(w.fvk.data(), i0, nq, d, doc_row);

  for (std::int64_t j0 = key_begin; j0 < i1; j0 += kTile) {
    const std::int64_t j1 = std::min(j0 + kTile, i1);
    const std::int64_t nk = j1 - j0;
    const std::int64_t off = kv_offset + j0 * d.kv_stride;  // row j0 of this kv head in k, v, dk, dv
    ++stats.key_tiles;
    stats.score_entries += nq * nk;
    load_transposed(w.kt.data(), k + off, d.kv_stride, nk, hd);
    load_transposed(w.vt.data(), v + off, d.kv_stride, nk, hd);
    score_tile(w.s.data(), w.q.data(), w.kt.data(), nq, hd);
    score_tile(w.dp.data(), w.dout.data(), w.vt.data(), nq, hd);
    row_ranges(w.lo.data(), w.hi.data(), w.fvk.data(), i0, nq, j0, j1);

    for (std::int64_t r = 0; r < nq; ++r) {
      const std::int64_t c0 = w.lo[r], c1 = w.hi[r];
      T* __restrict srow = w.s.data() + r * kTile;
      T* __restrict dprow = w.dp.data() + r * kTile;
      if (c0 < c1) {
        if (alibi) add_alibi(srow, c0, c1, i0 + r, j0, slope);
        const T row_dsum = w.dsum[r];
        exp_shifted(srow, c0, c1, w.lse[r]);
        for (std::int64_t c = c0; c < c1; ++c) dprow[c] = srow[c] * (dprow[c] - row_dsum);
      }
      // Entries this row may not see are exact zeros for the transposed products below.
      for (std::int64_t c = 0; c < c0; ++c) srow[c] = dprow[c] = T(0);
      for (std::int64_t c = c1; c < nk; ++c) srow[c] = dprow[c] = T(0);
    }
    column_ranges(w.col_lo.data(), w.col_hi.data(), w.lo.data(), w.hi.data(), i0, nq, j0, nk);

    // dQ/scale += dS K;  dK += dS^T (Q scale);  dV += P^T dO.
    accumulate_rows<T, HD>(w.dq.data(), hd, w.dp.data(), kTile, 1, k + off, d.kv_stride, nq, w.lo.data(),
                           w.hi.data(), 0, hd);
    accumulate_rows<T, HD>(dk + off, d.kv_stride, w.dp.data(), 1, kTile, w.q.data(), hd, nk, w.col_lo.data(),
                           w.col_hi.data(), 0, hd);
    accumulate_rows<T, HD>(dv + off, d.kv_stride, w.s.data(), 1, kTile, w.dout.data(), hd, nk, w.col_lo.data(),
                           w.col_hi.data(), 0, hd);
  }

  for (std::int64_t r = 0; r < nq; ++r) {
    const T* src = w.dq.data() + r * hd;
    T* dst = dq + (b * n + i0 + r) * d.q_stride + h * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = src[c] * scale;
  }
}

// Below this many multiply-adds (about 50 us on one core) a call runs on one thread: waking a team costs
// more than it saves, and much more on a busy machine (finite-difference checks make thousands of tiny calls).
constexpr double kParallelMinWork = 1 << 18;

double work_of(const Dims& d) {
  return attention_visible_pairs(d.seq_len, d.window) * static_cast<double>(d.batch * d.n_heads * d.head_dim);
}

template <typename T, int HD>
AttentionStats forward_all(T* out, T* lse, const T* q, const T* k, const T* v, const Dims& d,
                           const AttentionMask& mask) {
  const std::int64_t n_tiles = (d.seq_len + kTile - 1) / kTile;
  std::int64_t key_tiles = 0, score_entries = 0;
#pragma omp parallel reduction(+ : key_tiles, score_entries) if (work_of(d) >= kParallelMinWork)
  {
    ForwardScratch<T> w(d.head_dim);
    AttentionStats local;
    // Late query tiles see the most keys: hand them out first so the dynamic schedule ends evenly.
#pragma omp for collapse(3) schedule(dynamic)
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t h = 0; h < d.n_heads; ++h) {
        for (std::int64_t t = 0; t < n_tiles; ++t) {
          forward_tile<T, HD>(out, lse, q, k, v, d, mask, b, h, (n_tiles - 1 - t) * kTile, w, local);
        }
      }
    }
    key_tiles += local.key_tiles;
    score_entries += local.score_entries;
  }
  return AttentionStats{key_tiles, score_entries};
}

template <typename T, int HD>
AttentionStats backward_all(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                            const T* v, const Dims& d, const AttentionMask& mask) {
  const std::int64_t n = d.seq_len, hd = d.head_dim;
  const std::int64_t n_tiles = (n + kTile - 1) / kTile;
  std::int64_t key_tiles = 0, score_entries = 0;
#pragma omp parallel reduction(+ : key_tiles, score_entries) if (work_of(d) >= kParallelMinWork)
  {
    BackwardScratch<T> w(hd);
    AttentionStats local;
#pragma omp for collapse(2) schedule(dynamic)
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t g = 0; g < d.n_kv_heads; ++g) {
        // dK, dV are overwritten: zero this kv head's columns (only those: k and v may be column blocks
        // of a fused buffer whose other columns belong to someone else).
        for (std::int64_t t = 0; t < n; ++t) {
          const std::int64_t off = (b * n + t) * d.kv_stride + g * hd;
          std::fill(dk + off, dk + off + hd, T(0));
          std::fill(dv + off, dv + off + hd, T(0));
        }
        for (std::int64_t h = g * d.group; h < (g + 1) * d.group; ++h) {
          for (std::int64_t t = 0; t < n_tiles; ++t) {
            backward_tile<T, HD>(dq, dk, dv, dout, out, lse, q, k, v, d, mask, b, h, t * kTile, w, local);
          }
        }
      }
    }
    key_tiles += local.key_tiles;
    score_entries += local.score_entries;
  }
  return AttentionStats{key_tiles, score_entries};
}

}  // namespace

// The common head sizes get kernels with the width fixed at compile time (see accumulate_rows).
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask, AttentionStats* stats) {
  const Dims d = resolve(shape, mask);
  AttentionStats st;
  switch (d.head_dim) {
    case 32: st = forward_all<T, 32>(out, lse, q, k, v, d, mask); break;
    case 64: st = forward_all<T, 64>(out, lse, q, k, v, d, mask); break;
    case 128: st = forward_all<T, 128>(out, lse, q, k, v, d, mask); break;
    default: st = forward_all<T, 0>(out, lse, q, k, v, d, mask); break;
  }
  if (stats != nullptr) *stats = st;
}

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask) {
  attention_forward(out, lse, q, k, v, shape, mask, nullptr);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask, AttentionStats* stats) {
  const Dims d = resolve(shape, mask);
  AttentionStats st;
  switch (d.head_dim) {
    case 32: st = backward_all<T, 32>(dq, dk, dv, dout, out, lse, q, k, v, d, mask); break;
    case 64: st = backward_all<T, 64>(dq, dk, dv, dout, out, lse, q, k, v, d, mask); break;
    case 128: st = backward_all<T, 128>(dq, dk, dv, dout, out, lse, q, k, v, d, mask); break;
    default: st = backward_all<T, 0>(dq, dk, dv, dout, out, lse, q, k, v, d, mask); break;
  }
  if (stats != nullptr) *stats = st;
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask) {
  attention_backward(dq, dk, dv, dout, out, lse, q, k, v, shape, mask, nullptr);
}

#define ZEBRA_ATTENTION_INSTANTIATE(T)                                                                          \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&,              \
                                     const AttentionMask&);                                                     \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&,              \
                                     const AttentionMask&, AttentionStats*);                                    \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,  \
                                      const AttentionShape&, const AttentionMask&);                             \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,  \
                                      const AttentionShape&, const AttentionMask&, AttentionStats*);
ZEBRA_ATTENTION_INSTANTIATE(float)
ZEBRA_ATTENTION_INSTANTIATE(double)
#undef ZEBRA_ATTENTION_INSTANTIATE

std::vector<double> alibi_slopes(std::int64_t n_heads) {
  ZEBRA_CHECK(n_heads > 0, "alibi_slopes: n_heads must be > 0, got ", n_heads);
  // p = the largest power of two <= n_heads. Its series 2^(-8/p * (i+1)), i < p, gives the first p slopes;
  // the remaining n_heads - p are the odd-indexed members 2^(-8/(2p) * (1, 3, 5, ...)) of the series for 2p,
  // which interleave with the first ones (BLOOM's choice; for a power of two nothing remains).
  std::int64_t p = 1;
  while (p * 2 <= n_heads) p *= 2;
  std::vector<double> slopes;
  slopes.reserve(static_cast<std::size_t>(n_heads));
  for (std::int64_t i = 0; i < p; ++i) {
    slopes.push_back(std::exp2(-8.0 * static_cast<double>(i + 1) / static_cast<double>(p)));
  }
  for (std::int64_t i = 0; i < n_heads - p; ++i) {
    slopes.push_back(std::exp2(-8.0 * static_cast<double>(2 * i + 1) / static_cast<double>(2 * p)));
  }
  return slopes;
}

double attention_visible_pairs(std::int64_t seq_len, std::int64_t window) {
  ZEBRA_CHECK(seq_len >= 0 && window >= 1, "attention_visible_pairs: need seq_len >= 0 and window >= 1, got ",
              seq_len, " and ", window);
  // sum_{i<T} min(i + 1, w): rows i < w see i + 1 keys, the remaining T - w rows see w each.
  const double t = static_cast<double>(seq_len);
  if (window >= seq_len) return t * (t + 1.0) / 2.0;
  const double w = static_cast<double>(window);
  return w * (w + 1.0) / 2.0 + (t - w) * w;
}

}  // namespace zebra
