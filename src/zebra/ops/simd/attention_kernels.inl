// Flash attention tile kernels, written once over a SIMD traits class `S` (ops/simd/traits.hpp) and compiled
// once per path: ops/attention.cpp includes this file (which includes simd/math.inl) inside one namespace per path
// (scalar, AVX2, AVX-512), each under its own `#pragma GCC target`, after every standard header (so that only
// the code below gets the target). The ops/attention.cpp preamble provides Dims, AttentionStats, kTile,
// kMasked, PackedInputs, pack_inputs, BackwardPlan.
//
// Layout of the score tile: transposed, st[j * kTile + r] for key j < nk and query r < NQ (NQ = nq rounded up
// to W), so that everything per query (running max, sum, lse, D) is a vector across the lanes and the
// softmax needs no horizontal reductions. Each product is one call of gemm_acc below:
//   forward   S^T  = K_tile . (Q scale)^T           A = K rows,          B = Q^T (per query tile)
//             O   += P . V                          A(r, j) = P^T[j][r],  B = V rows
//   backward  S^T, P^T as forward; dP^T = V_tile . dO^T
//             dS^T = P^T o (dP^T - D)
//             dV  += P^T . dO;  dK += dS^T . (Q scale);  dQ += dS . K      (A read transposed where needed)
// so only Q and dO are transposed, once per query tile, and K, V are read in place.

#include "zebra/ops/simd/math.inl"

// Rows [m0, m0 + R) of C (+)= A . B over columns [n0, n0 + NVv * W) and k in [k0, k1):
//   A(m, k) = a[m * a_rs + k * a_cs], B[k][n] = b[k * ldb + n], C[m][n] = c[m * ldc + n].
// The R x NVv accumulators stay in registers across the k loop (R * NVv <= 24 by the choice of MR, NV).
// Accumulating (not kZero), C rows are first multiplied by rs[r] when rs is given (the online softmax's rescale
// of O, folded into the load).
template <class S, int R, int NVv, bool kZero>
[[gnu::always_inline]] inline void micro_tile(typename S::T* __restrict c, std::int64_t ldc,
                                              const typename S::T* __restrict a, std::int64_t a_rs,
                                              std::int64_t a_cs, const typename S::T* __restrict b,
                                              std::int64_t ldb, std::int64_t k0, std::int64_t k1,
                                              const typename S::T* __restrict rs) {
  using V = typename S::V;
  constexpr int W = S::W;
  V acc[R][NVv];
  if constexpr (kZero) {
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NVv; ++v) acc[r][v] = S::set1(0);
  } else {
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NVv; ++v) acc[r][v] = S::load(c + r * ldc + v * W);
    if (rs != nullptr) {
      for (int r = 0; r < R; ++r) {
        const V f = S::set1(rs[r]);
        for (int v = 0; v < NVv; ++v) acc[r][v] = acc[r][v] * f;
      }
    }
  }
  for (std::int64_t k = k0; k < k1; ++k) {
    V bv[NVv];
    for (int v = 0; v < NVv; ++v) bv[v] = S::load(b + k * ldb + v * W);
    const typename S::T* ak = a + k * a_cs;
    for (int r = 0; r < R; ++r) {
      const V av = S::set1(ak[r * a_rs]);
      for (int v = 0; v < NVv; ++v) acc[r][v] = S::fma(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NVv; ++v) S::store(c + r * ldc + v * W, acc[r][v]);
}

// micro_tile with the row count R chosen at run time (1 <= rows <= MR).
template <class S, int NVv, bool kZero, int R = S::MR>
[[gnu::always_inline]] inline void micro_rows(int rows, typename S::T* c, std::int64_t ldc, const typename S::T* a,
                                              std::int64_t a_rs, std::int64_t a_cs, const typename S::T* b,
                                              std::int64_t ldb, std::int64_t k0, std::int64_t k1,
                                              const typename S::T* rs) {
  if constexpr (R == 1) {
    micro_tile<S, 1, NVv, kZero>(c, ldc, a, a_rs, a_cs, b, ldb, k0, k1, rs);
  } else {
    if (rows == R) {
      micro_tile<S, R, NVv, kZero>(c, ldc, a, a_rs, a_cs, b, ldb, k0, k1, rs);
    } else {
      micro_rows<S, NVv, kZero, R - 1>(rows, c, ldc, a, a_rs, a_cs, b, ldb, k0, k1, rs);
    }
  }
}

// C[m][n] (+)= sum_k A(m, k) B[k][n] for m < M, n < N, k < K (kZero: C is overwritten). When k_lo/k_hi are given,
// row m only needs k in [k_lo[m], k_hi[m]) (the A entries outside are zero): each block of rows runs over the
// union of its rows' ranges, which skips the masked parts of edge tiles without changing any result (adding
// the skipped 0 * B terms would not change a sum). With kZero every row block must have a non-empty range
// or be written as zero; the callers pass ranges only to accumulating products. row_scale (accumulating only):
// C row m is multiplied by row_scale[m] before the products are added; rows skipped for an empty range must
// have a scale of exactly 1 (they do: a row that sees no key of a tile keeps its softmax maximum).
//
// n_lo/n_hi (overwriting products only): row m's results are needed only in columns [n_lo[m], n_hi[m]); a block of
// rows skips every panel of NV * W columns outside the union of its rows' ranges and writes zeros there
// instead (the callers mask those entries anyway; zeros keep the buffer free of stale values).
template <class S, bool kZero>
void gemm_acc(typename S::T* c, std::int64_t ldc, const typename S::T* a, std::int64_t a_rs, std::int64_t a_cs,
              const typename S::T* b, std::int64_t ldb, std::int64_t M, std::int64_t N, std::int64_t K,
              const std::int32_t* k_lo = nullptr, const std::int32_t* k_hi = nullptr,
              const typename S::T* row_scale = nullptr, const std::int32_t* n_lo = nullptr,
              const std::int32_t* n_hi = nullptr) {
  using T = typename S::T;
  constexpr int W = S::W, MR = S::MR, NV = S::NV;
  // Whether the row block [m0, m0 + rows) needs any column of [c0, c1).
  auto needs = [&](std::int64_t m0, int rows, std::int64_t c0, std::int64_t c1) {
    if (n_lo == nullptr) return true;
    for (int r = 0; r < rows; ++r) {
      if (n_lo[m0 + r] < n_hi[m0 + r] && n_lo[m0 + r] < c1 && n_hi[m0 + r] > c0) return true;
    }
    return false;
  };
  auto range = [&](std::int64_t m0, int rows, std::int64_t& k0, std::int64_t& k1) {
    k0 = 0;
    k1 = K;
    if (k_lo == nullptr) return;
    k0 = K;
    k1 = 0;
    for (int r = 0; r < rows; ++r) {
      if (k_lo[m0 + r] >= k_hi[m0 + r]) continue;
      k0 = std::min<std::int64_t>(k0, k_lo[m0 + r]);
      k1 = std::max<std::int64_t>(k1, k_hi[m0 + r]);
    }
  };
  std::int64_t n0 = 0;
  for (; n0 + NV * W <= N; n0 += NV * W) {
    for (std::int64_t m0 = 0; m0 < M; m0 += MR) {
      const int rows = static_cast<int>(std::min<std::int64_t>(MR, M - m0));
      std::int64_t k0, k1;
      range(m0, rows, k0, k1);
      if (k0 >= k1 && !kZero) continue;
      if (kZero && !needs(m0, rows, n0, n0 + NV * W)) k1 = k0;  // no products: the micro-kernel stores zeros
      micro_rows<S, NV, kZero>(rows, c + m0 * ldc + n0, ldc, a + m0 * a_rs, a_rs, a_cs, b + n0, ldb, k0,
                               std::max(k0, k1), row_scale == nullptr ? nullptr : row_scale + m0);
    }
  }
  for (; n0 + W <= N; n0 += W) {
    for (std::int64_t m0 = 0; m0 < M; m0 += MR) {
      const int rows = static_cast<int>(std::min<std::int64_t>(MR, M - m0));
      std::int64_t k0, k1;
      range(m0, rows, k0, k1);
      if (k0 >= k1 && !kZero) continue;
      if (kZero && !needs(m0, rows, n0, n0 + W)) k1 = k0;
      micro_rows<S, 1, kZero>(rows, c + m0 * ldc + n0, ldc, a + m0 * a_rs, a_rs, a_cs, b + n0, ldb, k0,
                              std::max(k0, k1), row_scale == nullptr ? nullptr : row_scale + m0);
    }
  }
  // Columns left over when N is not a multiple of W (head sizes below or between vector widths).
  for (; n0 < N; ++n0) {
    for (std::int64_t m = 0; m < M; ++m) {
      std::int64_t k0 = 0, k1 = K;
      if (k_lo != nullptr) k0 = k_lo[m], k1 = k_hi[m];
      T sum = kZero ? T(0) : c[m * ldc + n0] * (row_scale == nullptr ? T(1) : row_scale[m]);
      for (std::int64_t k = k0; k < k1; ++k) sum += a[m * a_rs + k * a_cs] * b[k * ldb + n0];
      c[m * ldc + n0] = sum;
    }
  }
}

// The per-thread work buffers of one pass (hd = head_dim), 64-byte aligned.
template <typename T>
struct TileScratch {
  explicit TileScratch(std::int64_t hd)
      : qs(static_cast<std::size_t>(kTile * hd)),
        dor(static_cast<std::size_t>(kTile * hd)),
        st(static_cast<std::size_t>(kTile * kTile)),
        dpt(static_cast<std::size_t>(kTile * kTile)),
        acc(static_cast<std::size_t>(kTile * hd)),
        m(static_cast<std::size_t>(kTile)),
        rowv(static_cast<std::size_t>(kTile)),
        colsum(static_cast<std::size_t>(kTile)),
        l(static_cast<std::size_t>(kTile)),
        fvk(static_cast<std::size_t>(kTile)),
        ipos(static_cast<std::size_t>(kTile)),
        r_lo(static_cast<std::size_t>(kTile)),
        r_hi(static_cast<std::size_t>(kTile)),
        c_lo(static_cast<std::size_t>(kTile)),
        c_hi(static_cast<std::size_t>(kTile)) {}
  AlignedBuffer<T> qs;      // [kTile, hd]    Q scale, row-major (backward: B of dK += dS^T Q)
  AlignedBuffer<T> dor;     // [kTile, hd]    dO, row-major (backward: B of dV += P^T dO)
  AlignedBuffer<T> st;      // [kTile, kTile] S^T, then P^T
  AlignedBuffer<T> dpt;     // [kTile, kTile] dP^T, then dS^T (backward)
  AlignedBuffer<T> acc;     // [kTile, hd]    unnormalised O (forward) or dQ / scale (backward)
  AlignedBuffer<T> m;       // [kTile] running max (forward) or lse (backward)
  AlignedBuffer<T> rowv;    // [kTile] alpha (forward) or D = rowsum(dO o O) (backward)
  AlignedBuffer<T> colsum;  // [kTile] sum of this tile's P per query
  AlignedBuffer<double> l;  // [kTile] running softmax denominator
  AlignedBuffer<std::int32_t> fvk, ipos;  // [kTile] first visible key and position of each query (-1 = padding)
  AlignedBuffer<std::int32_t> r_lo, r_hi;  // [kTile] visible key columns of each query row of an edge tile
  AlignedBuffer<std::int32_t> c_lo, c_hi;  // [kTile] query rows that can see each key of an edge tile
};

// dst[r * hd + c] = src[c * kTile + r] for r < nq: a packed transposed query tile back to rows.
template <typename T>
void untranspose_tile(T* __restrict dst, const T* __restrict src, std::int64_t nq, std::int64_t hd) {
  for (std::int64_t r0 = 0; r0 < nq; r0 += 8) {
    const std::int64_t r1 = std::min(nq, r0 + 8);
    for (std::int64_t c = 0; c < hd; ++c) {
      for (std::int64_t r = r0; r < r1; ++r) dst[r * hd + c] = src[c * kTile + r];
    }
  }
}

// What a query tile needs about its rows: first visible keys, positions, and the key range it visits.
struct QueryTile {
  std::int64_t i0, nq, nq_pad;  // rows [i0, i0 + nq); nq_pad = nq rounded up to W
  std::int64_t p0;              // key position of row i0 (q_pos + i0)
  std::int64_t key_begin;       // smallest first visible key of the rows
  std::int64_t key_end;         // one past the last key a row may see: min(kv_len, p0 + nq)
  std::int64_t max_fvk;         // largest first visible key of the rows
  bool fvk_monotone;            // first visible keys do not decrease along the rows
};

template <class S>
QueryTile query_tile(TileScratch<typename S::T>& w, const Dims& d, const std::int32_t* doc_row, std::int64_t i0) {
  QueryTile q;
  q.i0 = i0;
  q.nq = std::min(kTile, d.seq_len - i0);
  q.nq_pad = (q.nq + S::W - 1) / S::W * S::W;
  q.p0 = d.q_pos + i0;
  q.key_end = std::min(d.kv_len, q.p0 + q.nq);
  q.key_begin = q.p0;
  q.max_fvk = 0;
  q.fvk_monotone = true;
  for (std::int64_t r = 0; r < kTile; ++r) {
    if (r < q.nq) {
      const std::int64_t i = q.p0 + r;
      const std::int64_t f = first_visible_key(i, d.window, doc_row == nullptr ? 0 : doc_row[i0 + r]);
      w.fvk[r] = static_cast<std::int32_t>(f);
      w.ipos[r] = static_cast<std::int32_t>(i);
      q.key_begin = std::min(q.key_begin, f);
      q.max_fvk = std::max(q.max_fvk, f);
      if (r > 0 && f < w.fvk[r - 1]) q.fvk_monotone = false;
    } else {
      w.fvk[r] = std::numeric_limits<std::int32_t>::max();  // padding rows see nothing
      w.ipos[r] = -1;
    }
  }
  q.key_begin = std::min(q.key_begin, q.key_end);
  return q;
}

// S^T for key tile [j0, j0 + nk) against the query tile (qt: its packed (Q scale)^T, [hd, kTile]): products,
// ALiBi, mask. Returns whether every (key, query) entry of the tile is visible (then no mask was applied and no
// ranges are needed); otherwise masked entries hold kMasked and w.r_lo/r_hi (per query) and w.c_lo/c_hi (per
// key) bound the visible parts.
template <class S>
bool score_tile(TileScratch<typename S::T>& w, const QueryTile& q, const typename S::T* qt,
                const typename S::T* kbase, const Dims& d, std::int64_t j0, std::int64_t nk, bool alibi,
                typename S::T slope) {
  using T = typename S::T;
  using V = typename S::V;
  using VI = typename S::VI;
  constexpr int W = S::W;
  const std::int64_t NQ = q.nq_pad, hd = d.head_dim;
  const bool full = j0 + nk - 1 <= q.p0 && j0 >= q.max_fvk && q.nq == NQ;
  if (!full) {
    // Visible key columns of each query row: [max(fvk, j0), i] within the tile.
    for (std::int64_t r = 0; r < q.nq; ++r) {
      const std::int64_t lo = std::max<std::int64_t>(w.fvk[r], j0) - j0;
      const std::int64_t hi = std::min<std::int64_t>(q.p0 + r + 1, j0 + nk) - j0;
      w.r_lo[r] = static_cast<std::int32_t>(lo < hi ? lo : 0);
      w.r_hi[r] = static_cast<std::int32_t>(lo < hi ? hi : 0);
    }
    // Query rows that can see each key: rows from the key's own position on (causal), up to the last row
    // whose first visible key is at or before it. With monotone first visible keys that is a prefix, found by
    // a sweep; otherwise the cover runs to the last row (the invisible entries inside are exact zeros).
    std::int64_t hi = 0;
    for (std::int64_t j = 0; j < nk; ++j) {
      const std::int64_t ja = j0 + j;
      const std::int64_t lo = std::clamp<std::int64_t>(ja - q.p0, 0, q.nq);
      if (q.fvk_monotone) {
        while (hi < q.nq && w.fvk[hi] <= ja) ++hi;
      } else {
        hi = q.nq;
      }
      w.c_lo[j] = static_cast<std::int32_t>(lo < hi ? lo : 0);
      w.c_hi[j] = static_cast<std::int32_t>(lo < hi ? hi : 0);
    }
  }
  // S^T = K_tile . (Q scale)^T; on edge tiles only the column panels some key of a row block can see.
  gemm_acc<S, true>(w.st.data(), kTile, kbase + j0 * hd, hd, 1, qt, kTile, nk, NQ, hd, nullptr, nullptr, nullptr,
                    full ? nullptr : w.c_lo.data(), full ? nullptr : w.c_hi.data());
  if (alibi) {
    // + (-slope) * (i - j): i - j is an exact integer in T.
    const V neg_slope = S::set1(-slope);
    for (std::int64_t j = 0; j < nk; ++j) {
      T* row = w.st.data() + j * kTile;
      const V jv = S::set1(static_cast<T>(j0 + j));
      for (std::int64_t r = 0; r < NQ; r += W) {
        const V iv = S::to_float(S::loadi(w.ipos.data() + r));
        S::store(row + r, S::fma(neg_slope, iv - jv, S::load(row + r)));
      }
    }
  }
  if (full) return true;
  const V masked = S::set1(kMasked);
  for (std::int64_t j = 0; j < nk; ++j) {
    T* row = w.st.data() + j * kTile;
    const VI ja = S::seti(static_cast<std::int32_t>(j0 + j));
    for (std::int64_t r = 0; r < NQ; r += W) {
      const VI visible = (ja <= S::loadi(w.ipos.data() + r)) & (ja >= S::loadi(w.fvk.data() + r));
      S::store(row + r, S::select(visible, S::load(row + r), masked));
    }
  }
  return false;
}

// Keys [jb, je) of the tile that at least one of the W queries [r, r + W) sees (an empty range when none does).
template <class S>
void key_span(const TileScratch<typename S::T>& w, const QueryTile& q, std::int64_t r, std::int64_t j0,
              std::int64_t nk, std::int64_t& jb, std::int64_t& je) {
  std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -1;
  for (std::int64_t l = r; l < r + S::W && l < q.nq; ++l) {
    lo = std::min<std::int64_t>(lo, w.fvk[l]);
    hi = std::max<std::int64_t>(hi, w.ipos[l]);
  }
  jb = std::clamp<std::int64_t>(lo - j0, 0, nk);
  je = std::clamp<std::int64_t>(hi + 1 - j0, jb, nk);
}

// Column block [r, r + W) of rows [0, jb) and [je, nk) of a transposed score tile (at col) = 0.
template <class S>
void zero_outside(typename S::T* col, std::int64_t jb, std::int64_t je, std::int64_t nk) {
  const typename S::V zero = S::set1(0);
  for (std::int64_t j = 0; j < jb; ++j) S::store(col + j * kTile, zero);
  for (std::int64_t j = je; j < nk; ++j) S::store(col + j * kTile, zero);
}

// One (batch b, head h, query tile t) of the forward pass; p holds the packed inputs (PackedInputs).
template <class S>
void forward_tile(typename S::T* out, typename S::T* lse, const PackedInputs<typename S::T>& p, const Dims& d,
                  const AttentionMask& mask, std::int64_t b, std::int64_t h, std::int64_t t,
                  TileScratch<typename S::T>& w, AttentionStats& stats) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  const std::int64_t n = d.seq_len, hd = d.head_dim, i0 = t * kTile;
  const std::int64_t kvh = h / d.group;
  const bool alibi = mask.alibi_slopes != nullptr;
  const T slope = alibi ? static_cast<T>(mask.alibi_slopes[h]) : T(0);
  const std::int32_t* doc_row = mask.doc_start == nullptr ? nullptr : mask.doc_start + b * n;
  const T* kbase = p.k + (b * d.n_kv_heads + kvh) * d.kv_len * hd;
  const T* vbase = p.v + (b * d.n_kv_heads + kvh) * d.kv_len * hd;
  const T* qt = p.qt + ((b * d.n_heads + h) * p.n_tiles + t) * hd * kTile;

  const QueryTile qtile = query_tile<S>(w, d, doc_row, i0);
  const std::int64_t nq = qtile.nq, NQ = qtile.nq_pad, key_end = qtile.key_end;
  for (std::int64_t r = 0; r < NQ; ++r) {
    w.m[r] = kMasked;  // "no maximum yet": see the comment at kMasked
    w.l[r] = 0.0;
  }
  std::fill(w.acc.begin(), w.acc.begin() + nq * hd, T(0));

  for (std::int64_t j0 = qtile.key_begin; j0 < key_end; j0 += kTile) {
    const std::int64_t nk = std::min(kTile, key_end - j0);
    ++stats.key_tiles;
    stats.score_entries += nq * nk;
    const bool full = score_tile<S>(w, qtile, qt, kbase, d, j0, nk, alibi, slope);

    // Column (per query) maxima, rescale factors alpha = exp(m_old - m_new), P = exp(S - m_new), column sums;
    // on edge tiles each group of W queries only over the keys one of them sees (P = 0 elsewhere).
    for (std::int64_t r = 0; r < NQ; r += W) {
      std::int64_t jb = 0, je = nk;
      if (!full) key_span<S>(w, qtile, r, j0, nk, jb, je);
      const V m_old = S::load(w.m.data() + r);
      V mx = m_old;
      for (std::int64_t j = jb; j < je; ++j) mx = S::vmax(mx, S::load(w.st.data() + j * kTile + r));
      S::store(w.rowv.data() + r, exp_poly<S>(m_old - mx));
      S::store(w.m.data() + r, mx);
      V sum = S::set1(0);
      for (std::int64_t j = jb; j < je; ++j) {
        T* pj = w.st.data() + j * kTile + r;
        const V e = exp_poly<S>(S::load(pj) - mx);
        S::store(pj, e);
        sum = sum + e;
      }
      zero_outside<S>(w.st.data() + r, jb, je, nk);
      S::store(w.colsum.data() + r, sum);
    }
    for (std::int64_t r = 0; r < nq; ++r) {
      w.l[r] = w.l[r] * static_cast<double>(w.rowv[r]) + static_cast<double>(w.colsum[r]);
    }
    // O = alpha o O + P . V, each query row over its visible keys only on edge tiles.
    gemm_acc<S, false>(w.acc.data(), hd, w.st.data(), 1, kTile, vbase + j0 * hd, hd, nq, hd, nk,
                       full ? nullptr : w.r_lo.data(), full ? nullptr : w.r_hi.data(), w.rowv.data());
  }

  for (std::int64_t r = 0; r < nq; ++r) {
    const std::int64_t i = i0 + r;
    T* dst = out + (b * n + i) * d.out_stride + h * hd;
    if (w.m[r] == kMasked) {
      // The row saw no key of this call (its maximum never left "none yet"): nothing to weigh (attention.hpp).
      for (std::int64_t c = 0; c < hd; ++c) dst[c] = T(0);
      lse[(b * d.n_heads + h) * n + i] = -std::numeric_limits<T>::infinity();
      continue;
    }
    // l >= 1: the row's maximum contributes exp(0) = 1.
    const T inv = static_cast<T>(1.0 / w.l[r]);
    const T* orow = w.acc.data() + r * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = orow[c] * inv;
    lse[(b * d.n_heads + h) * n + i] = static_cast<T>(static_cast<double>(w.m[r]) + std::log(w.l[r]));
  }
}

// One (batch b, head h, query tile t) of the backward pass: writes its rows of dQ and adds its contributions to
// the dK, dV rows of keys [key_origin, ...), which are contiguous [*, hd] blocks at dk_dst and dv_dst (the
// task's accumulation buffers).
template <class S>
void backward_tile(typename S::T* dq, typename S::T* dk_dst, typename S::T* dv_dst, std::int64_t key_origin,
                   const typename S::T* lse, const PackedInputs<typename S::T>& p, const Dims& d,
                   const AttentionMask& mask, std::int64_t b, std::int64_t h, std::int64_t t,
                   TileScratch<typename S::T>& w, AttentionStats& stats) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  const std::int64_t n = d.seq_len, hd = d.head_dim, i0 = t * kTile;
  const std::int64_t kvh = h / d.group;
  const T scale = static_cast<T>(d.scale);
  const bool alibi = mask.alibi_slopes != nullptr;
  const T slope = alibi ? static_cast<T>(mask.alibi_slopes[h]) : T(0);
  const std::int32_t* doc_row = mask.doc_start == nullptr ? nullptr : mask.doc_start + b * n;
  const T* kbase = p.k + (b * d.n_kv_heads + kvh) * d.kv_len * hd;
  const T* vbase = p.v + (b * d.n_kv_heads + kvh) * d.kv_len * hd;
  const std::int64_t tile_off = ((b * d.n_heads + h) * p.n_tiles + t) * hd * kTile;
  const T* qt = p.qt + tile_off;
  const T* dot = p.dot + tile_off;

  const QueryTile qtile = query_tile<S>(w, d, doc_row, i0);
  const std::int64_t nq = qtile.nq, NQ = qtile.nq_pad, key_end = qtile.key_end;
  untranspose_tile(w.qs.data(), qt, nq, hd);
  untranspose_tile(w.dor.data(), dot, nq, hd);
  for (std::int64_t r = 0; r < NQ; ++r) {
    const bool real = r < nq;
    w.rowv[r] = real ? p.dsum[(b * d.n_heads + h) * n + i0 + r] : T(0);
    // A row that saw no key (lse = -inf) takes lse = +inf: exp(S - inf) = 0, so it adds nothing.
    const T row_lse = real ? lse[(b * d.n_heads + h) * n + i0 + r] : T(0);
    w.m[r] = row_lse == -std::numeric_limits<T>::infinity() ? std::numeric_limits<T>::infinity() : row_lse;
  }
  std::fill(w.acc.begin(), w.acc.begin() + nq * hd, T(0));

  for (std::int64_t j0 = qtile.key_begin; j0 < key_end; j0 += kTile) {
    const std::int64_t nk = std::min(kTile, key_end - j0);
    ++stats.key_tiles;
    stats.score_entries += nq * nk;
    const bool full = score_tile<S>(w, qtile, qt, kbase, d, j0, nk, alibi, slope);
    // dP^T = V_tile . dO^T
    gemm_acc<S, true>(w.dpt.data(), kTile, vbase + j0 * hd, hd, 1, dot, kTile, nk, NQ, hd, nullptr, nullptr, nullptr,
                      full ? nullptr : w.c_lo.data(), full ? nullptr : w.c_hi.data());
    // P^T = exp(S^T - lse), dS^T = P^T o (dP^T - D); masked entries are exact zeros in both (on edge tiles the
    // keys no query of a group of W sees are zeroed without computing them).
    for (std::int64_t r = 0; r < NQ; r += W) {
      std::int64_t jb = 0, je = nk;
      if (!full) key_span<S>(w, qtile, r, j0, nk, jb, je);
      const V lse_v = S::load(w.m.data() + r);
      const V d_v = S::load(w.rowv.data() + r);
      for (std::int64_t j = jb; j < je; ++j) {
        T* pj = w.st.data() + j * kTile + r;
        T* ds = w.dpt.data() + j * kTile + r;
        const V pv = exp_poly<S>(S::load(pj) - lse_v);
        S::store(pj, pv);
        S::store(ds, pv * (S::load(ds) - d_v));
      }
      zero_outside<S>(w.st.data() + r, jb, je, nk);
      zero_outside<S>(w.dpt.data() + r, jb, je, nk);
    }
    const std::int32_t* clo = full ? nullptr : w.c_lo.data();
    const std::int32_t* chi = full ? nullptr : w.c_hi.data();
    T* dv_rows = dv_dst + (j0 - key_origin) * hd;
    T* dk_rows = dk_dst + (j0 - key_origin) * hd;
    // dV += P^T . dO;  dK += dS^T . (Q scale);  dQ / scale += dS . K (scale applied once, at the end).
    gemm_acc<S, false>(dv_rows, hd, w.st.data(), kTile, 1, w.dor.data(), hd, nk, hd, nq, clo, chi);
    gemm_acc<S, false>(dk_rows, hd, w.dpt.data(), kTile, 1, w.qs.data(), hd, nk, hd, nq, clo, chi);
    gemm_acc<S, false>(w.acc.data(), hd, w.dpt.data(), 1, kTile, kbase + j0 * hd, hd, nq, hd, nk,
                       full ? nullptr : w.r_lo.data(), full ? nullptr : w.r_hi.data());
  }

  for (std::int64_t r = 0; r < nq; ++r) {
    const T* src = w.acc.data() + r * hd;
    T* dst = dq + (b * n + i0 + r) * d.q_stride + h * hd;
    for (std::int64_t c = 0; c < hd; ++c) dst[c] = src[c] * scale;
  }
}

// The forward pass: one task per (batch, head, query tile), late tiles (which see the most keys) first so that
// the dynamic schedule ends evenly. Each output element is computed by one task in a fixed order, so the
// result does not depend on the thread count. ws: the workspace of forward_workspace_elements().
template <class S>
AttentionStats forward_all(typename S::T* out, typename S::T* lse, const typename S::T* q, const typename S::T* k,
                           const typename S::T* v, const Dims& d, const AttentionMask& mask, typename S::T* ws,
                           bool parallel) {
  const PackedInputs<typename S::T> p = packed_layout(ws, d, false);
  std::int64_t key_tiles = 0, score_entries = 0;
#pragma omp parallel reduction(+ : key_tiles, score_entries) if (parallel)
  {
    pack_inputs<typename S::T>(p, d, q, k, v, nullptr, nullptr);
    TileScratch<typename S::T> w(d.head_dim);
    AttentionStats local;
#pragma omp for collapse(3) schedule(dynamic)
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t h = 0; h < d.n_heads; ++h) {
        for (std::int64_t t = 0; t < p.n_tiles; ++t) {
          forward_tile<S>(out, lse, p, d, mask, b, h, p.n_tiles - 1 - t, w, local);
        }
      }
    }
    key_tiles += local.key_tiles;
    score_entries += local.score_entries;
  }
  return AttentionStats{key_tiles, score_entries};
}

// The backward pass over the tasks of `plan` (see BackwardPlan), after packing the inputs. Chunk 0 of each
// (batch, kv head) accumulates dK, dV into dkv0 ([B * n_kv_heads, Tk, hd] for dK, then the same for dV), later
// chunks into their own partial buffers; each task zeroes its buffers first. A last loop writes dK = chunk 0 +
// chunk 1 + ... in that order into the strided outputs. Every element is thus the same sum in the same order for
// any thread count, and no two threads write one element. ws: backward_workspace_elements().
template <class S>
AttentionStats backward_all(typename S::T* dq, typename S::T* dk, typename S::T* dv, const typename S::T* dout,
                            const typename S::T* out, const typename S::T* lse, const typename S::T* q,
                            const typename S::T* k, const typename S::T* v, const Dims& d, const AttentionMask& mask,
                            const BackwardPlan& plan, typename S::T* ws, bool parallel) {
  using T = typename S::T;
  const std::int64_t nk = d.kv_len, hd = d.head_dim;
  const PackedInputs<T> p = packed_layout(ws, d, true);
  const std::int64_t head_block = nk * hd, all = d.batch * d.n_kv_heads * head_block;
  T* dkv0 = p.end;
  T* partials = dkv0 + 2 * all;
  const std::int64_t n_tasks = static_cast<std::int64_t>(plan.tasks.size());
  std::int64_t key_tiles = 0, score_entries = 0;
#pragma omp parallel reduction(+ : key_tiles, score_entries) if (parallel)
  {
    pack_inputs(p, d, q, k, v, dout, out);
    TileScratch<T> w(hd);
    AttentionStats local;
#pragma omp for schedule(dynamic)
    for (std::int64_t ti = 0; ti < n_tasks; ++ti) {
      const BackwardTask& task = plan.tasks[static_cast<std::size_t>(plan.order[static_cast<std::size_t>(ti)])];
      T* dk_dst;
      T* dv_dst;
      std::int64_t origin, rows;
      if (task.chunk == 0) {
        dk_dst = dkv0 + (task.b * d.n_kv_heads + task.kvh) * head_block;
        dv_dst = dk_dst + all;
        origin = 0;
        rows = nk;
      } else {
        dk_dst = partials + task.partial_offset;
        rows = task.key_end - task.key_begin;
        dv_dst = dk_dst + rows * hd;
        origin = task.key_begin;
      }
      std::fill(dk_dst, dk_dst + rows * hd, T(0));
      std::fill(dv_dst, dv_dst + rows * hd, T(0));
      for (std::int64_t t = task.tile_begin; t < task.tile_end; ++t) {
        for (std::int64_t h = task.kvh * d.group; h < (task.kvh + 1) * d.group; ++h) {
          backward_tile<S>(dq, dk_dst, dv_dst, origin, lse, p, d, mask, task.b, h, t, w, local);
        }
      }
    }
    // dK, dV rows of (b, kv head) = chunk 0 + the partials of chunks 1, 2, ... in that order. Only the kv head's
    // columns are written: k and v may be column blocks of a fused buffer whose other columns are someone else's.
    const std::int64_t row_blocks = (nk + kTile - 1) / kTile;
#pragma omp for collapse(3) schedule(static)
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t g = 0; g < d.n_kv_heads; ++g) {
        for (std::int64_t rb = 0; rb < row_blocks; ++rb) {
          const std::int64_t r0 = rb * kTile, r1 = std::min(nk, r0 + kTile);
          const T* k0 = dkv0 + (b * d.n_kv_heads + g) * head_block;
          const T* v0 = k0 + all;
          for (std::int64_t t = r0; t < r1; ++t) {
            T* dkr = dk + (b * nk + t) * d.kv_stride + g * hd;
            T* dvr = dv + (b * nk + t) * d.kv_stride + g * hd;
            for (std::int64_t e = 0; e < hd; ++e) {
              dkr[e] = k0[t * hd + e];
              dvr[e] = v0[t * hd + e];
            }
          }
          for (std::int64_t c = 1; c < plan.chunks; ++c) {
            const BackwardTask& task = plan.tasks[static_cast<std::size_t>((b * d.n_kv_heads + g) * plan.chunks + c)];
            const std::int64_t span = task.key_end - task.key_begin;
            const std::int64_t lo = std::max(r0, task.key_begin), hi = std::min(r1, task.key_end);
            const T* pk = partials + task.partial_offset;
            const T* pv = pk + span * hd;
            for (std::int64_t t = lo; t < hi; ++t) {
              T* dkr = dk + (b * nk + t) * d.kv_stride + g * hd;
              T* dvr = dv + (b * nk + t) * d.kv_stride + g * hd;
              const T* pkr = pk + (t - task.key_begin) * hd;
              const T* pvr = pv + (t - task.key_begin) * hd;
              for (std::int64_t e = 0; e < hd; ++e) {
                dkr[e] += pkr[e];
                dvr[e] += pvr[e];
              }
            }
          }
        }
      }
    }
    key_tiles += local.key_tiles;
    score_entries += local.score_entries;
  }
  return AttentionStats{key_tiles, score_entries};
}
