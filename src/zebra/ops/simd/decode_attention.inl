// The decode attention kernel of simd/decode_attention.hpp over a SIMD traits class `S` and a storage policy
// `H` (F32Store, F16Store, Bf16Store below), included by simd/decode_attention.cpp once per path inside that
// path's target region. Scores and the softmax are fp32; l is summed in fp32 over at most kDecodeChunk keys.

#include "zebra/ops/simd/math.inl"

struct F32Store {
  using E = float;
  template <class S>
  static typename S::V load(const E* p) {
    return S::load(p);
  }
  static float get(const E* p) { return *p; }
};
struct F16Store {
  using E = std::uint16_t;
  template <class S>
  static typename S::V load(const E* p) {
    return S::load_f16(p);
  }
  static float get(const E* p) { return f16_to_float(*p); }
};
struct Bf16Store {
  using E = std::uint16_t;
  template <class S>
  static typename S::V load(const E* p) {
    return S::load_bf16(p);
  }
  static float get(const E* p) { return bf16_to_float(*p); }
};

// q . k over hd values, q in fp32, k in storage E (from the chunk's own rows when fresh, also fp32).
template <class S, class H, class K>
[[gnu::always_inline]] inline float dot_row(const float* q, const K* k, std::int64_t hd) {
  using V = typename S::V;
  V a0 = S::set1(0.0f), a1 = S::set1(0.0f);
  std::int64_t e = 0;
  for (; e + 2 * S::W <= hd; e += 2 * S::W) {
    if constexpr (std::is_same_v<K, float>) {
      a0 = S::fma(S::load(q + e), S::load(k + e), a0);
      a1 = S::fma(S::load(q + e + S::W), S::load(k + e + S::W), a1);
    } else {
      a0 = S::fma(S::load(q + e), H::template load<S>(k + e), a0);
      a1 = S::fma(S::load(q + e + S::W), H::template load<S>(k + e + S::W), a1);
    }
  }
  float s = S::hsum(a0 + a1);
  for (; e < hd; ++e) {
    if constexpr (std::is_same_v<K, float>) {
      s += q[e] * k[e];
    } else {
      s += q[e] * H::get(k + e);
    }
  }
  return s;
}

// o[hd] += p * v[hd], v in storage E or fp32.
template <class S, class H, class K>
[[gnu::always_inline]] inline void axpy_row(float* o, float p, const K* v, std::int64_t hd) {
  const typename S::V pv = S::set1(p);
  std::int64_t e = 0;
  for (; e + S::W <= hd; e += S::W) {
    if constexpr (std::is_same_v<K, float>) {
      S::store(o + e, S::fma(pv, S::load(v + e), S::load(o + e)));
    } else {
      S::store(o + e, S::fma(pv, H::template load<S>(v + e), S::load(o + e)));
    }
  }
  for (; e < hd; ++e) {
    if constexpr (std::is_same_v<K, float>) {
      o[e] += p * v[e];
    } else {
      o[e] += p * H::get(v + e);
    }
  }
}

// One task: query row r, KV head g, keys [ja, jb) (within one chunk). Writes, per query head of the group,
// m, l and o[hd] into part[(h_in_group) * (hd + 2)]: m at 0, l at 1, o at 2.. . s: scratch [group, kDecodeChunk].
template <class S, class H>
void decode_task(const DecodeAttentionArgs& a, std::int64_t r, std::int64_t g, std::int64_t ja, std::int64_t jb,
                 float* part, float* s, float* qs) {
  using E = typename H::E;
  const std::int64_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads, i = a.p0 + r;
  const auto* kp = static_cast<const E*>(a.k_past);
  const auto* vp = static_cast<const E*>(a.v_past);
  const std::int64_t n = jb - ja;
  for (std::int64_t h = 0; h < group; ++h) {
    const float* src = a.q + r * a.q_stride + (g * group + h) * hd;
    for (std::int64_t e = 0; e < hd; ++e) qs[h * hd + e] = src[e] * a.scale;
  }
  // Scores: one pass over the keys, every head of the group per key.
  for (std::int64_t j = ja; j < jb; ++j) {
    if (j >= a.p0) {
      const float* k = a.k_new + (j - a.p0) * a.new_stride + g * hd;
      for (std::int64_t h = 0; h < group; ++h) s[h * kDecodeChunk + (j - ja)] = dot_row<S, H>(qs + h * hd, k, hd);
    } else {
      const std::int64_t row = a.ring > 0 ? j % a.ring : j;
      const E* k = kp + g * a.past_head_stride + row * a.past_stride;
      for (std::int64_t h = 0; h < group; ++h) s[h * kDecodeChunk + (j - ja)] = dot_row<S, H>(qs + h * hd, k, hd);
    }
  }
  for (std::int64_t h = 0; h < group; ++h) {
    float* sh = s + h * kDecodeChunk;
    if (a.alibi_slopes != nullptr) {
      const auto slope = static_cast<float>(a.alibi_slopes[g * group + h]);
      for (std::int64_t c = 0; c < n; ++c) sh[c] -= slope * static_cast<float>(i - (ja + c));
    }
    float m = sh[0];
    for (std::int64_t c = 1; c < n; ++c) m = std::max(m, sh[c]);
    const typename S::V mv = S::set1(m);
    float l = 0.0f;
    std::int64_t c = 0;
    for (; c + S::W <= n; c += S::W) {
      const typename S::V p = exp_poly<S>(S::load(sh + c) - mv);
      S::store(sh + c, p);
      l += S::hsum(p);
    }
    for (; c < n; ++c) {
      float one[S::W] = {};
      one[0] = sh[c] - m;
      float res[S::W];
      S::store(res, exp_poly<S>(S::load(one)));
      sh[c] = res[0];
      l += res[0];
    }
    float* ph = part + h * (hd + 2);
    ph[0] = m;
    ph[1] = l;
    std::fill(ph + 2, ph + 2 + hd, 0.0f);
  }
  // Values: one pass, every head of the group per value row.
  for (std::int64_t j = ja; j < jb; ++j) {
    if (j >= a.p0) {
      const float* v = a.v_new + (j - a.p0) * a.new_stride + g * hd;
      for (std::int64_t h = 0; h < group; ++h) {
        axpy_row<S, H>(part + h * (hd + 2) + 2, s[h * kDecodeChunk + (j - ja)], v, hd);
      }
    } else {
      const std::int64_t row = a.ring > 0 ? j % a.ring : j;
      const E* v = vp + g * a.past_head_stride + row * a.past_stride;
      for (std::int64_t h = 0; h < group; ++h) {
        axpy_row<S, H>(part + h * (hd + 2) + 2, s[h * kDecodeChunk + (j - ja)], v, hd);
      }
    }
  }
}

// Sums of the lanes of 8 vectors: out[k] = sum of acc[k]'s lanes (a transposing reduction instead of 8
// horizontal sums: AVX2 hadd tree; AVX-512 folds to 256 bits first).
template <class S>
[[gnu::always_inline]] inline void reduce8(const typename S::V* acc, float* out) {
  if constexpr (S::W == 1) {
    for (int k = 0; k < 8; ++k) out[k] = acc[k];
  } else {
    __m256 v[8];
    if constexpr (S::W == 16) {
      for (int k = 0; k < 8; ++k) {
        float l[16];
        std::memcpy(l, &acc[k], sizeof l);
        __m256 lo, hi;
        std::memcpy(&lo, l, sizeof lo);
        std::memcpy(&hi, l + 8, sizeof hi);
        v[k] = _mm256_add_ps(lo, hi);
      }
    } else {
      for (int k = 0; k < 8; ++k) v[k] = acc[k];
    }
    const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    // q0 = [s0 s1 s2 s3 | s0' s1' s2' s3'] (low / high 128-bit halves of the sums), q1 the same for 4..7.
    const __m256 lo = _mm256_permute2f128_ps(q0, q1, 0x20), hi = _mm256_permute2f128_ps(q0, q1, 0x31);
    _mm256_storeu_ps(out, _mm256_add_ps(lo, hi));
  }
}

// reduce8 for KB = 8; for KB = 4 the first half of its tree.
template <class S, int KB>
[[gnu::always_inline]] inline void reduce_keys(const typename S::V* acc, float* out) {
  if constexpr (KB == 8) {
    reduce8<S>(acc, out);
  } else if constexpr (S::W == 1) {
    for (int k = 0; k < KB; ++k) out[k] = acc[k];
  } else {
    typename S::V padded[8];
    for (int k = 0; k < 4; ++k) padded[k] = acc[k];
    for (int k = 4; k < 8; ++k) padded[k] = S::set1(0.0f);
    float all[8];
    reduce8<S>(padded, all);
    for (int k = 0; k < 4; ++k) out[k] = all[k];
  }
}

// A key or value row of KV head g at position j: the chunk's own fp32 rows, or the store's.
template <class H>
struct RowAt {
  const DecodeAttentionArgs& a;
  std::int64_t g;
  const typename H::E* base;  // k_past or v_past
  const float* fresh;         // k_new or v_new
  bool is_fresh(std::int64_t j) const { return j >= a.p0; }
  const float* fresh_row(std::int64_t j) const { return fresh + (j - a.p0) * a.new_stride + g * a.head_dim; }
  const typename H::E* past_row(std::int64_t j) const {
    const std::int64_t row = a.ring > 0 ? j % a.ring : j;
    return base + g * a.past_head_stride + row * a.past_stride;
  }
};

template <class S, class H>
[[gnu::always_inline]] inline typename S::V load_kv(const RowAt<H>& at, std::int64_t j, std::int64_t e) {
  if (at.is_fresh(j)) return S::load(at.fresh_row(j) + e);
  return H::template load<S>(at.past_row(j) + e);
}

// Vectors per output slab: the largest power of two <= NV with G of them per head in at most 12 registers.
constexpr int slab_vectors(int nv, int g) {
  int ns = 1;
  while (ns * 2 <= nv && ns * 2 * g <= 12) ns *= 2;
  return ns;
}

// decode_task with the group size G and the head size HD = NV * W known at compile time: scores KB keys at a
// time into KB accumulators per head (one transposing reduction per block), each key vector widened once for
// all G heads; values with every head's output slab in registers (slabs of NS vectors, G * NS <= 12), each
// value vector widened once for all G heads.
template <class S, class H, int G, int NV>
void decode_task_fixed(const DecodeAttentionArgs& a, std::int64_t r, std::int64_t g, std::int64_t ja, std::int64_t jb,
                       float* part, float* s, float* qs) {
  using V = typename S::V;
  constexpr int W = S::W, HD = NV * W;
  constexpr int NS = slab_vectors(NV, G);
  static_assert(NV % NS == 0, "slabs must tile the head");
  const std::int64_t i = a.p0 + r, n = jb - ja;
  const RowAt<H> kat{a, g, static_cast<const typename H::E*>(a.k_past), a.k_new};
  const RowAt<H> vat{a, g, static_cast<const typename H::E*>(a.v_past), a.v_new};
  for (int h = 0; h < G; ++h) {
    const float* src = a.q + r * a.q_stride + (g * G + h) * HD;
    for (int e = 0; e < HD; ++e) qs[h * HD + e] = src[e] * a.scale;
  }
  // Key blocks of KB keys: each key vector is loaded (and widened) once for all G heads; G * KB accumulators
  // stay in registers (KB = 8 where the register file allows it, else 4).
  constexpr int KB = (W == 16 || G == 1) ? 8 : 4;
  std::int64_t j = ja;
  for (; j + KB <= jb; j += KB) {
    // The block's rows, located once (a ring's slot is a division).
    const typename H::E* krow[KB];
    const float* kfresh[KB];
    for (int k = 0; k < KB; ++k) {
      const bool fresh = kat.is_fresh(j + k);
      kfresh[k] = fresh ? kat.fresh_row(j + k) : nullptr;
      krow[k] = fresh ? nullptr : kat.past_row(j + k);
    }
    // The rows a few blocks ahead (a decode step is bound by how fast the keys arrive, not by the FMAs).
    if (j + 8 * KB < jb && !kat.is_fresh(j + 8 * KB + KB - 1)) {
      for (int k = 0; k < KB; ++k) {
        const char* ahead = reinterpret_cast<const char*>(kat.past_row(j + 8 * KB + k));
        for (std::int64_t b = 0; b < HD * static_cast<std::int64_t>(sizeof(typename H::E)); b += 64) __builtin_prefetch(ahead + b);
      }
    }
    V acc[G][KB];
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) {
#pragma GCC unroll 8
      for (int k = 0; k < KB; ++k) acc[h][k] = S::set1(0.0f);
    }
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
#pragma GCC unroll 8
      for (int k = 0; k < KB; ++k) {
        const V kv = kfresh[k] != nullptr ? S::load(kfresh[k] + v * W) : H::template load<S>(krow[k] + v * W);
#pragma GCC unroll 8
        for (int h = 0; h < G; ++h) acc[h][k] = S::fma(S::load(qs + h * HD + v * W), kv, acc[h][k]);
      }
    }
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) reduce_keys<S, KB>(acc[h], s + h * kDecodeChunk + (j - ja));
  }
  for (; j < jb; ++j) {
    for (int h = 0; h < G; ++h) {
      V acc = S::set1(0.0f);
      for (int v = 0; v < NV; ++v) acc = S::fma(S::load(qs + h * HD + v * W), load_kv<S, H>(kat, j, v * W), acc);
      s[h * kDecodeChunk + (j - ja)] = S::hsum(acc);
    }
  }
  for (int h = 0; h < G; ++h) {
    float* sh = s + h * kDecodeChunk;
    if (a.alibi_slopes != nullptr) {
      const auto slope = static_cast<float>(a.alibi_slopes[g * G + h]);
      for (std::int64_t c = 0; c < n; ++c) sh[c] -= slope * static_cast<float>(i - (ja + c));
    }
    float m = sh[0];
    for (std::int64_t c = 1; c < n; ++c) m = std::max(m, sh[c]);
    float l = 0.0f;
    std::int64_t c = 0;
    for (; c + W <= n; c += W) {
      const V p = exp_poly<S>(S::load(sh + c) - S::set1(m));
      S::store(sh + c, p);
      l += S::hsum(p);
    }
    if (c < n) {
      float buf[W] = {};
      for (std::int64_t t = c; t < n; ++t) buf[t - c] = sh[t] - m;
      float res[W];
      S::store(res, exp_poly<S>(S::load(buf)));
      for (std::int64_t t = c; t < n; ++t) {
        sh[t] = res[t - c];
        l += res[t - c];
      }
    }
    part[h * (HD + 2)] = m;
    part[h * (HD + 2) + 1] = l;
  }
  for (int v0 = 0; v0 < NV; v0 += NS) {
    V o[G][NS];
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) {
#pragma GCC unroll 16
      for (int v = 0; v < NS; ++v) o[h][v] = S::set1(0.0f);
    }
    for (std::int64_t jj = ja; jj < jb; ++jj) {
      if (jj + 32 < jb && !vat.is_fresh(jj + 32)) {
        const char* ahead = reinterpret_cast<const char*>(vat.past_row(jj + 32) + v0 * W);
        for (std::int64_t b = 0; b < NS * W * static_cast<std::int64_t>(sizeof(typename H::E)); b += 64) __builtin_prefetch(ahead + b);
      }
      const bool fresh = vat.is_fresh(jj);
      const float* vf = fresh ? vat.fresh_row(jj) : nullptr;
      const typename H::E* vs = fresh ? nullptr : vat.past_row(jj);
      V vv[NS];
#pragma GCC unroll 16
      for (int v = 0; v < NS; ++v) vv[v] = fresh ? S::load(vf + (v0 + v) * W) : H::template load<S>(vs + (v0 + v) * W);
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h) {
        const V p = S::set1(s[h * kDecodeChunk + (jj - ja)]);
#pragma GCC unroll 16
        for (int v = 0; v < NS; ++v) o[h][v] = S::fma(p, vv[v], o[h][v]);
      }
    }
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) {
#pragma GCC unroll 16
      for (int v = 0; v < NS; ++v) S::store(part + h * (HD + 2) + 2 + (v0 + v) * W, o[h][v]);
    }
  }
}

template <class S, class H, int G>
bool decode_task_hd(const DecodeAttentionArgs& a, std::int64_t r, std::int64_t g, std::int64_t ja, std::int64_t jb,
                    float* part, float* s, float* qs) {
  switch (a.head_dim / S::W * (a.head_dim % S::W == 0 ? 1 : 0)) {
    case 64 / S::W: decode_task_fixed<S, H, G, 64 / S::W>(a, r, g, ja, jb, part, s, qs); return true;
    case 128 / S::W: decode_task_fixed<S, H, G, 128 / S::W>(a, r, g, ja, jb, part, s, qs); return true;
    default: return false;
  }
}

// The compile-time shapes where there is one (head_dim 64 or 128 on a vector path, group 1 to 4), else the
// general task.
template <class S, class H>
void run_task(const DecodeAttentionArgs& a, std::int64_t r, std::int64_t g, std::int64_t ja, std::int64_t jb,
              float* part, float* s, float* qs) {
  if constexpr (S::W > 1) {
    bool done = false;
    switch (a.n_heads / a.n_kv_heads) {
      case 1: done = decode_task_hd<S, H, 1>(a, r, g, ja, jb, part, s, qs); break;
      case 2: done = decode_task_hd<S, H, 2>(a, r, g, ja, jb, part, s, qs); break;
      case 3: done = decode_task_hd<S, H, 3>(a, r, g, ja, jb, part, s, qs); break;
      case 4: done = decode_task_hd<S, H, 4>(a, r, g, ja, jb, part, s, qs); break;
      default: break;
    }
    if (done) return;
  }
  decode_task<S, H>(a, r, g, ja, jb, part, s, qs);
}

// The whole call: tasks over (row, KV head, chunk), then the per-head combination.
template <class S, class H>
void decode_all(const DecodeAttentionArgs& a) {
  const std::int64_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  // Chunk ranges per row: first chunk index and count.
  std::int64_t first[kDecodeMaxRows], count[kDecodeMaxRows], task0[kDecodeMaxRows + 1];
  task0[0] = 0;
  for (std::int64_t r = 0; r < a.n_new; ++r) {
    const std::int64_t i = a.p0 + r, lo = first_visible_key(i, a.window);
    first[r] = lo / kDecodeChunk;
    count[r] = i / kDecodeChunk - first[r] + 1;
    task0[r + 1] = task0[r] + count[r] * a.n_kv_heads;
  }
  const std::int64_t tasks = task0[a.n_new];
  const std::int64_t part_floats = group * (hd + 2);
  thread_local AlignedBuffer<float> parts;
  if (parts.size() < static_cast<std::size_t>(tasks * part_floats)) {
    parts.resize(static_cast<std::size_t>(tasks * part_floats));
  }
  float* all_parts = parts.data();
#pragma omp parallel num_threads(a.threads) if (a.threads > 1 && tasks > 1)
  {
    thread_local AlignedBuffer<float> s, qs;  // scores [group, kDecodeChunk], scaled queries [group, hd]
    if (s.size() < static_cast<std::size_t>(group * kDecodeChunk)) s.resize(static_cast<std::size_t>(group * kDecodeChunk));
    if (qs.size() < static_cast<std::size_t>(group * hd)) qs.resize(static_cast<std::size_t>(group * hd));
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < tasks; ++t) {
      std::int64_t r = 0;
      while (t >= task0[r + 1]) ++r;
      const std::int64_t local = t - task0[r], g = local % a.n_kv_heads, c = first[r] + local / a.n_kv_heads;
      const std::int64_t i = a.p0 + r;
      const std::int64_t ja = std::max(c * kDecodeChunk, first_visible_key(i, a.window));
      const std::int64_t jb = std::min((c + 1) * kDecodeChunk, i + 1);
      run_task<S, H>(a, r, g, ja, jb, all_parts + t * part_floats, s.data(), qs.data());
    }
  }
  // Combine in chunk order (per row, head).
  for (std::int64_t r = 0; r < a.n_new; ++r) {
    for (std::int64_t h = 0; h < a.n_heads; ++h) {
      const std::int64_t g = h / group, hg = h % group;
      auto part_of = [&](std::int64_t c) { return all_parts + (task0[r] + c * a.n_kv_heads + g) * part_floats + hg * (hd + 2); };
      float m = part_of(0)[0];
      for (std::int64_t c = 1; c < count[r]; ++c) m = std::max(m, part_of(c)[0]);
      float* o = a.out + r * a.out_stride + h * hd;
      std::fill(o, o + hd, 0.0f);
      double l = 0.0;
      for (std::int64_t c = 0; c < count[r]; ++c) {
        const float* p = part_of(c);
        const float f = std::exp(p[0] - m);
        l += static_cast<double>(p[1]) * f;
        for (std::int64_t e = 0; e < hd; ++e) o[e] += f * p[2 + e];
      }
      // l >= 1: the row's maximum contributes exp(0) to its chunk's sum.
      const auto inv = static_cast<float>(1.0 / l);
      for (std::int64_t e = 0; e < hd; ++e) o[e] *= inv;
    }
  }
}
