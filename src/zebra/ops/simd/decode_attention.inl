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
      decode_task<S, H>(a, r, g, ja, jb, all_parts + t * part_floats, s.data(), qs.data());
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
