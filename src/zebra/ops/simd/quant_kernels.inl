// The SIMD block kernels of simd/quant_kernels.hpp, included by simd/quant_kernels.cpp inside the AVX2 region
// (ZEBRA_QK_WIDE 0) and again inside the AVX-512 region (ZEBRA_QK_WIDE 1: pairs of blocks on 512 bits, the
// 256-bit code for a last odd block and for everything else).

inline float hsum256(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Every format stores its f16 scale d first.
inline float block_scale(const unsigned char* blk) { return _cvtsh_ss(load_u16(blk)); }

// The factor of the block's offset term (times the activation block's sum): -8 d (Q4_0), m (Q4_1).
template <class F>
inline float offset_scale(const unsigned char* blk, float dw) {
  if constexpr (std::is_same_v<F, Q4_1Format>) {
    return _cvtsh_ss(load_u16(blk + offsetof(BlockQ4_1, m)));
  } else {
    return -8.0f * dw;
  }
}

// The 32 quants of a block as bytes in value order: Q8_0 signed, Q4 unsigned nibbles (low nibbles = values
// 0..15 first, high nibbles = values 16..31).
template <class F>
inline __m256i load_quants(const unsigned char* blk) {
  const unsigned char* q = blk + F::kQs;
  if constexpr (std::is_same_v<F, Q8_0Format>) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  } else {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
  }
}

// 8 int32 partial sums of quants . activations (each the sum of 4 adjacent products; exact: |sum| < 2^16).
template <class F>
inline __m256i dot_quants(__m256i wq, __m256i aq) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (std::is_same_v<F, Q8_0Format>) {
    // maddubs multiplies unsigned by signed bytes: |w| (<= 128, read unsigned) times a with w's sign (|a| <= 127,
    // so negating it cannot overflow). Pair sums stay below 2 * 128 * 127 < 2^15.
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq)), ones);
  } else {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wq, aq), ones);
  }
}

inline __m256i load_act(const std::int8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }

#if ZEBRA_QK_WIDE
// 512-bit vectors are built from halves with GCC's vector builtins: the _mm512 cast / insert / convert intrinsics
// pass an "undefined" vector that GCC 12 warns about (-Wmaybe-uninitialized) inside its own header.
typedef long long V4di __attribute__((vector_size(32)));
typedef float V8sf __attribute__((vector_size(32)));
typedef float V16sf __attribute__((vector_size(64)));
typedef int V16si __attribute__((vector_size(64)));
// Lanes of v picked by idx (mod 16): GCC's generic shuffle; clang has none with a variable index vector.
#if defined(__clang__)
#define ZEBRA_SHUFFLE16(v, idx) \
  reinterpret_cast<V16sf>(_mm512_permutexvar_ps(reinterpret_cast<__m512i>(idx), reinterpret_cast<__m512>(v)))
#else
#define ZEBRA_SHUFFLE16(v, idx) __builtin_shuffle(v, idx)
#endif

inline float hsum512(__m512 v) {
  const V16sf x = reinterpret_cast<V16sf>(v);
  const V8sf lo = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
  const V8sf hi = __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
  return hsum256(reinterpret_cast<__m256>(lo + hi));
}
inline __m512i join(__m256i lo, __m256i hi) {
  return reinterpret_cast<__m512i>(
      __builtin_shufflevector(reinterpret_cast<V4di>(lo), reinterpret_cast<V4di>(hi), 0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m512 join_scales(float lo, float hi) {
  const V8sf a = reinterpret_cast<V8sf>(_mm256_set1_ps(lo)), b = reinterpret_cast<V8sf>(_mm256_set1_ps(hi));
  return reinterpret_cast<__m512>(__builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
inline __m512 to_ps(__m512i x) {
  return reinterpret_cast<__m512>(__builtin_convertvector(reinterpret_cast<V16si>(x), V16sf));
}

// The quants of two consecutive blocks: block p0's 32 values, then block p1's.
template <class F>
inline __m512i load_quants2(const unsigned char* p0, const unsigned char* p1) {
  if constexpr (std::is_same_v<F, Q8_0Format>) {
    return join(load_quants<F>(p0), load_quants<F>(p1));
  } else {
    // Both blocks' 16 bytes of nibbles split at once, then arranged lo0 hi0 lo1 hi1.
    const __m256i x = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p1 + F::kQs)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(p0 + F::kQs)));
    const __m256i m = _mm256_set1_epi8(0x0f);
    const V4di lo = reinterpret_cast<V4di>(_mm256_and_si256(x, m));
    const V4di hi = reinterpret_cast<V4di>(_mm256_and_si256(_mm256_srli_epi16(x, 4), m));
    return reinterpret_cast<__m512i>(__builtin_shufflevector(lo, hi, 0, 1, 4, 5, 2, 3, 6, 7));
  }
}

template <class F>
inline __m512i dot_quants2(__m512i wq, __m512i aq) {
  const __m512i ones = _mm512_set1_epi16(1);
  if constexpr (std::is_same_v<F, Q8_0Format>) {
    const __mmask64 negative = _mm512_movepi8_mask(wq);
    const __m512i a_signed = _mm512_mask_sub_epi8(aq, negative, _mm512_setzero_si512(), aq);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(wq), a_signed), ones);
  } else {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(wq, aq), ones);
  }
}
#endif

// One weight row (nblk blocks at `row`) against NB quantized activation rows: out[i * ldo].
template <class F, int NB>
[[gnu::always_inline]] inline void gemv_row(float* out, std::int64_t ldo, const ActRow* act, std::int64_t nblk,
                                            const unsigned char* row) {
  constexpr std::size_t kBytes = sizeof(typename F::Block);
  __m256 acc[NB];
  float off[NB];
  for (int i = 0; i < NB; ++i) {
    acc[i] = _mm256_setzero_ps();
    off[i] = 0.0f;
  }
  std::int64_t b = 0;
#if ZEBRA_QK_WIDE
  __m512 acc2[NB];
  for (int i = 0; i < NB; ++i) acc2[i] = _mm512_setzero_ps();
  for (; b + 2 <= nblk; b += 2) {
    const unsigned char* p0 = row + static_cast<std::size_t>(b) * kBytes;
    const unsigned char* p1 = p0 + kBytes;
    const float dw0 = block_scale(p0), dw1 = block_scale(p1);
    const __m512i wq = load_quants2<F>(p0, p1);
    for (int i = 0; i < NB; ++i) {
      const __m512i aq = _mm512_loadu_si512(act[i].qs + b * kActBlock);
      acc2[i] = _mm512_fmadd_ps(to_ps(dot_quants2<F>(wq, aq)), join_scales(dw0 * act[i].d[b], dw1 * act[i].d[b + 1]),
                                acc2[i]);
      if constexpr (F::kOffset) {
        off[i] += offset_scale<F>(p0, dw0) * act[i].sum[b] + offset_scale<F>(p1, dw1) * act[i].sum[b + 1];
      }
    }
  }
#endif
  for (; b < nblk; ++b) {
    const unsigned char* p = row + static_cast<std::size_t>(b) * kBytes;
    const float dw = block_scale(p);
    const __m256i wq = load_quants<F>(p);
    for (int i = 0; i < NB; ++i) {
      const __m256i aq = load_act(act[i].qs + b * kActBlock);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_quants<F>(wq, aq)), _mm256_set1_ps(dw * act[i].d[b]), acc[i]);
      if constexpr (F::kOffset) off[i] += offset_scale<F>(p, dw) * act[i].sum[b];
    }
  }
  for (int i = 0; i < NB; ++i) {
    float s = hsum256(acc[i]);
#if ZEBRA_QK_WIDE
    s += hsum512(acc2[i]);
#endif
    out[i * ldo] = s + off[i];
  }
}

// Weight rows prefetched ahead of the row being multiplied.
constexpr std::int64_t kPrefetchRows = 8;

template <class F, int NB>
void gemv_rows(float* out, std::int64_t ldo, const void* act, const void* w, std::size_t row_bytes, std::int64_t rows,
               std::int64_t cols) {
  ActRow a[NB];
  for (int i = 0; i < NB; ++i) a[i] = act_row(act, i, cols);
  const auto* base = static_cast<const unsigned char*>(w);
  for (std::int64_t r = 0; r < rows; ++r) {
    {  // as gemv_rows_repacked below
      const unsigned char* ahead = base + static_cast<std::size_t>(r + kPrefetchRows) * row_bytes;
      for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(ahead + off);
    }
    gemv_row<F, NB>(out + r, ldo, a, cols / kActBlock, base + static_cast<std::size_t>(r) * row_bytes);
  }
}

template <class F>
void gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const void* w, std::size_t row_bytes,
          std::int64_t rows, std::int64_t cols) {
  switch (n) {
    case 1: return gemv_rows<F, 1>(out, ldo, act, w, row_bytes, rows, cols);
    case 2: return gemv_rows<F, 2>(out, ldo, act, w, row_bytes, rows, cols);
    case 3: return gemv_rows<F, 3>(out, ldo, act, w, row_bytes, rows, cols);
    case 4: return gemv_rows<F, 4>(out, ldo, act, w, row_bytes, rows, cols);
    default: return;  // n is checked by the caller (1 <= n <= 4)
  }
}

// x [cols] quantized: d = absmax / 127 and q = nearest-even(x * (127 / absmax)), as the scalar reference.
void quantize_activations(void* dst, const float* x, std::int64_t cols) {
  auto* qs = static_cast<std::int8_t*>(dst);
  auto* dd = reinterpret_cast<float*>(qs + cols);
  float* ds = dd + cols / kActBlock;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (std::int64_t b = 0; b < cols / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(xb + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float a = _mm_cvtss_f32(m);
    const float d = a / 127.0f;
    const __m256 id = _mm256_set1_ps(a > 0.0f ? 127.0f / a : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));  // MXCSR: nearest even
    // Sum of the 32 quants (exact in int32), then pack 32 x int32 -> 32 x int8 in value order.
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);  // lanes interleave by 128-bit halves
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    // packs works per 128-bit lane: dwords 0..7 now hold values {0-3, 8-11, 16-19, 24-27, 4-7, 12-15, 20-23, 28-31}.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kActBlock), _mm256_permutevar8x32_epi32(p8, order));
    dd[b] = d;
    ds[b] = d * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

// 8 quants (bytes) at the low half of x as floats: signed (Q8_0) or unsigned.
template <bool kSigned>
inline __m256 bytes_to_ps(__m128i x) {
  return _mm256_cvtepi32_ps(kSigned ? _mm256_cvtepi8_epi32(x) : _mm256_cvtepu8_epi32(x));
}

template <class F>
void to_f32(float* dst, const void* src, std::int64_t n) {
  constexpr std::size_t kBytes = sizeof(typename F::Block);
  constexpr bool kSigned = std::is_same_v<F, Q8_0Format>;
  const auto* p = static_cast<const unsigned char*>(src);
  for (std::int64_t b = 0; b < n / kActBlock; ++b, p += kBytes) {
    const __m256 d = _mm256_set1_ps(block_scale(p));
    const __m256i q = load_quants<F>(p);
    const __m128i halves[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    float* y = dst + b * kActBlock;
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 2; ++k) {
        const __m256 v = bytes_to_ps<kSigned>(k == 0 ? halves[h] : _mm_srli_si128(halves[h], 8));
        __m256 out;
        if constexpr (std::is_same_v<F, Q4_1Format>) {
          out = _mm256_fmadd_ps(d, v, _mm256_set1_ps(offset_scale<F>(p, 0.0f)));
        } else if constexpr (std::is_same_v<F, Q4_0Format>) {
          out = _mm256_mul_ps(d, _mm256_sub_ps(v, _mm256_set1_ps(8.0f)));
        } else {
          out = _mm256_mul_ps(d, v);
        }
        _mm256_storeu_ps(y + 16 * h + 8 * k, out);
      }
    }
  }
}

template <int NB>
[[gnu::always_inline]] inline void gemv_f32_row(float* out, std::int64_t ldo, const float* inp, const float* w,
                                                std::int64_t cols) {
#if ZEBRA_QK_WIDE
  using V = __m512;
  constexpr int kW = 16;
  auto load = [](const float* p) { return _mm512_loadu_ps(p); };
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  auto hsum = [](V v) { return hsum512(v); };
  auto zero = [] { return _mm512_setzero_ps(); };
#else
  using V = __m256;
  constexpr int kW = 8;
  auto load = [](const float* p) { return _mm256_loadu_ps(p); };
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  auto hsum = [](V v) { return hsum256(v); };
  auto zero = [] { return _mm256_setzero_ps(); };
#endif
  V acc0[NB], acc1[NB];
  for (int i = 0; i < NB; ++i) acc0[i] = acc1[i] = zero();
  std::int64_t k = 0;
  for (; k + 2 * kW <= cols; k += 2 * kW) {
    const V w0 = load(w + k), w1 = load(w + k + kW);
    for (int i = 0; i < NB; ++i) {
      acc0[i] = fma(w0, load(inp + i * cols + k), acc0[i]);
      acc1[i] = fma(w1, load(inp + i * cols + k + kW), acc1[i]);
    }
  }
  for (int i = 0; i < NB; ++i) {
    float s = hsum(acc0[i]) + hsum(acc1[i]);
    for (std::int64_t t = k; t < cols; ++t) s += inp[i * cols + t] * w[t];
    out[i * ldo] = s;
  }
}

void gemv_f32(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const float* w, std::int64_t w_stride,
              std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * w_stride;
    switch (n) {
      case 1: gemv_f32_row<1>(out + r, ldo, inp, wr, cols); break;
      case 2: gemv_f32_row<2>(out + r, ldo, inp, wr, cols); break;
      case 3: gemv_f32_row<3>(out + r, ldo, inp, wr, cols); break;
      case 4: gemv_f32_row<4>(out + r, ldo, inp, wr, cols); break;
      default: return;  // 1 <= n <= 4, checked by the caller
    }
  }
}

template <class F>
constexpr QuantKernels kKernels{&quantize_activations, &gemv<F>, &to_f32<F>};

// ---- repacked rows (util/dtype.hpp): quants contiguous, the scales as f16 arrays after them ----------------
//
// Per window of kWin blocks the f16 scales are widened and multiplied by the activation scales as vectors;
// the AVX-512 loop then takes 4 blocks of nibbles in one 64-byte load (2 masks give blocks 0-1 and 2-3, each
// pair one maddubs against 64 activation bytes) and picks each pair's two scales with one permute.

// The scale products and offset factors of a window of up to kWin blocks, converted and multiplied as vectors.
#if ZEBRA_QK_WIDE
constexpr int kWin = 16;
#else
constexpr int kWin = 8;
#endif

// The vector of kWin floats: f16 values src[k] widened (k < n <= kWin, 0 beyond), and floats src[k].
#if ZEBRA_QK_WIDE
typedef float VWin __attribute__((vector_size(64)));
inline VWin load_f16_window(const std::uint16_t* src, std::int64_t n) {
  const __mmask8 lo = static_cast<__mmask8>(n >= 8 ? 0xff : (1u << n) - 1);
  const __mmask8 hi = static_cast<__mmask8>(n >= 16 ? 0xff : n > 8 ? (1u << (n - 8)) - 1 : 0);
  const V8sf a = reinterpret_cast<V8sf>(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(lo, src)));
  const V8sf b = reinterpret_cast<V8sf>(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(hi, src + 8)));
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
inline VWin load_f32_window(const float* src, std::int64_t n) {
  const __mmask16 m = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
  return reinterpret_cast<VWin>(_mm512_maskz_loadu_ps(m, src));
}
// Lane k of v in every lane (a single block's scale).
inline __m256 lane_of(VWin v, std::int64_t k) {
  const V16si idx = V16si{} + static_cast<int>(k);
  const V16sf all = ZEBRA_SHUFFLE16(v, idx);
  return reinterpret_cast<__m256>(__builtin_shufflevector(all, all, 0, 1, 2, 3, 4, 5, 6, 7));
}
inline float sum_window(VWin v) { return hsum512(reinterpret_cast<__m512>(v)); }
#else
typedef float VWin __attribute__((vector_size(32)));
inline VWin load_f16_window(const std::uint16_t* src, std::int64_t n) {
  if (n >= 8) return reinterpret_cast<VWin>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src))));
  std::uint16_t buf[8] = {};
  std::memcpy(buf, src, static_cast<std::size_t>(n) * 2);
  return reinterpret_cast<VWin>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(buf))));
}
inline VWin load_f32_window(const float* src, std::int64_t n) {
  if (n >= 8) return reinterpret_cast<VWin>(_mm256_loadu_ps(src));
  float buf[8] = {};
  std::memcpy(buf, src, static_cast<std::size_t>(n) * 4);
  return reinterpret_cast<VWin>(_mm256_loadu_ps(buf));
}
inline __m256 lane_of(VWin v, std::int64_t k) {
  return _mm256_permutevar8x32_ps(reinterpret_cast<__m256>(v), _mm256_set1_epi32(static_cast<int>(k)));
}
inline float sum_window(VWin v) { return hsum256(reinterpret_cast<__m256>(v)); }
#endif

// One block (32 quants as bytes in value order) against an activation block: the 256-bit step.
template <class F>
inline __m256i dot_block(__m256i wq, const std::int8_t* a) {
  if constexpr (F::kQ8) {
    return dot_quants<Q8_0Format>(wq, load_act(a));
  } else {
    return dot_quants<Q4_0Format>(wq, load_act(a));
  }
}

template <class F, int NB>
[[gnu::always_inline]] inline void gemv_row_repacked(float* out, std::int64_t ldo, const ActRow* act, std::int64_t nb,
                                                     const unsigned char* row) {
  const unsigned char* qs = row;
  const auto* d16 = reinterpret_cast<const std::uint16_t*>(row + F::kQuantBytes * static_cast<std::size_t>(nb));
  const std::uint16_t* m16 = d16 + nb;
  const std::int64_t quads = F::kQ8 ? 0 : nb / 4;
  __m256 acc1[NB];  // single blocks (256 bits)
  VWin offv[NB];    // the offset terms, per lane of the windows
#if ZEBRA_QK_WIDE
  __m512 acc[NB][2];
  for (int i = 0; i < NB; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const V16si pair0 = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
#endif
  for (int i = 0; i < NB; ++i) {
    acc1[i] = _mm256_setzero_ps();
    offv[i] = VWin{};
  }
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (std::int64_t w0 = 0; w0 < nb; w0 += kWin) {
    const std::int64_t nw = std::min<std::int64_t>(kWin, nb - w0);
    const VWin dw = load_f16_window(d16 + w0, nw);
    VWin cw = dw * -8.0f;
    if constexpr (F::kMin) cw = load_f16_window(m16 + w0, nw);
    VWin sv[NB];
    for (int i = 0; i < NB; ++i) {
      sv[i] = dw * load_f32_window(act[i].d + w0, nw);
      if constexpr (F::kOffset) offv[i] += cw * load_f32_window(act[i].sum + w0, nw);
    }
    std::int64_t b = w0;
    const std::int64_t end = w0 + nw;
#if ZEBRA_QK_WIDE
    __m512 svv[NB];
    for (int i = 0; i < NB; ++i) svv[i] = reinterpret_cast<__m512>(sv[i]);
    if constexpr (F::kQ8) {
      for (; b + 2 <= end; b += 2) {
        const __m512i wq = _mm512_loadu_si512(qs + 32 * b);
        const V16si idx = pair0 + static_cast<int>(b - w0);
        for (int i = 0; i < NB; ++i) {
          const __m512i aq = _mm512_loadu_si512(act[i].qs + 32 * b);
          const __m512 scale = reinterpret_cast<__m512>(ZEBRA_SHUFFLE16(reinterpret_cast<V16sf>(svv[i]), idx));
          acc[i][0] = _mm512_fmadd_ps(to_ps(dot_quants2<Q8_0Format>(wq, aq)), scale, acc[i][0]);
        }
      }
    } else {
      for (; b + 4 <= end && b + 4 <= 4 * quads; b += 4) {
        const __m512i x = _mm512_loadu_si512(qs + 16 * b);
        const __m512i m = _mm512_set1_epi8(0x0f);
        const __m512i lo = _mm512_and_si512(x, m), hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m);
        const V16si idx0 = pair0 + static_cast<int>(b - w0), idx1 = idx0 + 2;
        for (int i = 0; i < NB; ++i) {
          const __m512i a01 = _mm512_loadu_si512(act[i].qs + 32 * b);
          const __m512i a23 = _mm512_loadu_si512(act[i].qs + 32 * b + 64);
          const V16sf s = reinterpret_cast<V16sf>(svv[i]);
          acc[i][0] = _mm512_fmadd_ps(to_ps(dot_quants2<Q4_0Format>(lo, a01)),
                                      reinterpret_cast<__m512>(ZEBRA_SHUFFLE16(s, idx0)), acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(to_ps(dot_quants2<Q4_0Format>(hi, a23)),
                                      reinterpret_cast<__m512>(ZEBRA_SHUFFLE16(s, idx1)), acc[i][1]);
        }
      }
      if (b + 2 <= end) {  // the row's last pair: 32 bytes, byte i = value i | value i + 32
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * b));
        const __m512i wq = join(_mm256_and_si256(x, low4), _mm256_and_si256(_mm256_srli_epi16(x, 4), low4));
        const V16si idx = pair0 + static_cast<int>(b - w0);
        for (int i = 0; i < NB; ++i) {
          const __m512i aq = _mm512_loadu_si512(act[i].qs + 32 * b);
          const __m512 scale = reinterpret_cast<__m512>(ZEBRA_SHUFFLE16(reinterpret_cast<V16sf>(svv[i]), idx));
          acc[i][0] = _mm512_fmadd_ps(to_ps(dot_quants2<Q4_0Format>(wq, aq)), scale, acc[i][0]);
        }
        b += 2;
      }
    }
#else
    if constexpr (!F::kQ8) {
      for (; b + 4 <= end && b + 4 <= 4 * quads; b += 4) {
        // Bytes 0-31: low nibbles block b, high b + 2; bytes 32-63: b + 1 and b + 3.
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * b));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * b + 32));
        const __m256i q[4] = {_mm256_and_si256(x0, low4), _mm256_and_si256(x1, low4),
                              _mm256_and_si256(_mm256_srli_epi16(x0, 4), low4),
                              _mm256_and_si256(_mm256_srli_epi16(x1, 4), low4)};
        for (int i = 0; i < NB; ++i) {
          for (int k = 0; k < 4; ++k) {
            const __m256 scale = lane_of(sv[i], b - w0 + k);
            acc1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_block<F>(q[k], act[i].qs + 32 * (b + k))), scale, acc1[i]);
          }
        }
      }
      if (b + 2 <= end) {  // the row's last pair
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * b));
        const __m256i q[2] = {_mm256_and_si256(x, low4), _mm256_and_si256(_mm256_srli_epi16(x, 4), low4)};
        for (int i = 0; i < NB; ++i) {
          for (int k = 0; k < 2; ++k) {
            const __m256 scale = lane_of(sv[i], b - w0 + k);
            acc1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_block<F>(q[k], act[i].qs + 32 * (b + k))), scale, acc1[i]);
          }
        }
        b += 2;
      }
    }
#endif
    for (; b < end; ++b) {  // single blocks: every Q8_0R block on AVX2, a last odd one otherwise
      __m256i wq;
      if constexpr (F::kQ8) {
        wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * b));
      } else {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16 * b));
        const __m128i m = _mm_set1_epi8(0x0f);
        wq = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
      }
      for (int i = 0; i < NB; ++i) {
        acc1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_block<F>(wq, act[i].qs + 32 * b)),
                                  lane_of(sv[i], b - w0), acc1[i]);
      }
    }
  }
  for (int i = 0; i < NB; ++i) {
    float s = hsum256(acc1[i]);
#if ZEBRA_QK_WIDE
    s += hsum512(_mm512_add_ps(acc[i][0], acc[i][1]));
#endif
    if constexpr (F::kOffset) s += sum_window(offv[i]);
    out[i * ldo] = s;
  }
}

template <class F, int NB>
void gemv_rows_repacked(float* out, std::int64_t ldo, const void* act, const void* w, std::size_t row_bytes,
                        std::int64_t rows, std::int64_t cols) {
  ActRow a[NB];
  for (int i = 0; i < NB; ++i) a[i] = act_row(act, i, cols);
  const auto* base = static_cast<const unsigned char*>(w);
  for (std::int64_t r = 0; r < rows; ++r) {
    // The row kPrefetchRows ahead, so that its cache lines are on their way while this one is multiplied (the
    // hardware prefetcher alone leaves a decode product at half the read bandwidth; measured in bench quant).
    // Past the last row of the call too: the next task's rows follow, and a prefetch never faults.
    {
      const unsigned char* ahead = base + static_cast<std::size_t>(r + kPrefetchRows) * row_bytes;
      for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(ahead + off);
    }
    gemv_row_repacked<F, NB>(out + r, ldo, a, cols / kActBlock, base + static_cast<std::size_t>(r) * row_bytes);
  }
}

template <class F>
void gemv_repacked(float* out, std::int64_t ldo, const void* act, std::int64_t n, const void* w, std::size_t row_bytes,
                   std::int64_t rows, std::int64_t cols) {
  switch (n) {
    case 1: return gemv_rows_repacked<F, 1>(out, ldo, act, w, row_bytes, rows, cols);
    case 2: return gemv_rows_repacked<F, 2>(out, ldo, act, w, row_bytes, rows, cols);
    case 3: return gemv_rows_repacked<F, 3>(out, ldo, act, w, row_bytes, rows, cols);
    case 4: return gemv_rows_repacked<F, 4>(out, ldo, act, w, row_bytes, rows, cols);
    default: return;
  }
}

// 32 quants (bytes in value order) of one block to floats: d q (Q8_0R), d (q - 8) (Q4_0R), d q + m (Q4_1R), the
// same operations as the scalar dequantisation (so Q8_0R / Q4_0R agree bit for bit, Q4_1R within the FMA's
// one rounding).
template <class F>
inline void block_to_f32(float* y, __m256i q, float d, float c) {
  const __m256 dv = _mm256_set1_ps(d);
  const __m128i halves[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 2; ++k) {
      const __m128i part = k == 0 ? halves[h] : _mm_srli_si128(halves[h], 8);
      const __m256 v = _mm256_cvtepi32_ps(F::kQ8 ? _mm256_cvtepi8_epi32(part) : _mm256_cvtepu8_epi32(part));
      __m256 o;
      if constexpr (F::kMin) {
        o = _mm256_fmadd_ps(dv, v, _mm256_set1_ps(c));
      } else if constexpr (F::kOffset) {
        o = _mm256_mul_ps(dv, _mm256_sub_ps(v, _mm256_set1_ps(8.0f)));
      } else {
        o = _mm256_mul_ps(dv, v);
      }
      _mm256_storeu_ps(y + 16 * h + 8 * k, o);
    }
  }
}

template <class F>
void to_f32_repacked(float* dst, const void* src, std::int64_t n) {
  const auto* row = static_cast<const unsigned char*>(src);
  const std::int64_t nb = n / kActBlock;
  const auto* d16 = reinterpret_cast<const std::uint16_t*>(row + F::kQuantBytes * static_cast<std::size_t>(nb));
  const std::uint16_t* m16 = d16 + nb;
  auto scale = [&](std::int64_t b) { return _cvtsh_ss(d16[b]); };
  auto offset = [&](std::int64_t b) { return F::kMin ? _cvtsh_ss(m16[b]) : 0.0f; };
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  std::int64_t b = 0;
  if constexpr (F::kQ8) {
    for (; b < nb; ++b) {
      block_to_f32<F>(dst + 32 * b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * b)), scale(b), 0.0f);
    }
    return;
  }
  for (; b + 4 <= 4 * (nb / 4); b += 4) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * b));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * b + 32));
    const __m256i q[4] = {_mm256_and_si256(x0, low4), _mm256_and_si256(x1, low4),
                          _mm256_and_si256(_mm256_srli_epi16(x0, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(x1, 4), low4)};
    for (int k = 0; k < 4; ++k) block_to_f32<F>(dst + 32 * (b + k), q[k], scale(b + k), offset(b + k));
  }
  if (b + 2 <= nb) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * b));
    block_to_f32<F>(dst + 32 * b, _mm256_and_si256(x, low4), scale(b), offset(b));
    block_to_f32<F>(dst + 32 * (b + 1), _mm256_and_si256(_mm256_srli_epi16(x, 4), low4), scale(b + 1), offset(b + 1));
    b += 2;
  }
  if (b < nb) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * b));
    const __m128i m = _mm_set1_epi8(0x0f);
    block_to_f32<F>(dst + 32 * b, _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m)),
                    scale(b), offset(b));
  }
}

template <class F>
constexpr QuantKernels kRepacked{&quantize_activations, &gemv_repacked<F>, &to_f32_repacked<F>};
