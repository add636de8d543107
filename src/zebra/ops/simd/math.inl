// Vector math over a SIMD traits class `S` (ops/simd/traits.hpp), included by the kernel files that use it
// (ops/simd/attention_kernels.inl, elementwise_kernels.inl, weight_kernels.inl), once per instruction set inside
// its target region: partial loads and stores for the tails of rows, the exponential and the sigmoid.

// A vector of the first `rest` < W elements of p (the others zero), and its store: the tails of the row.
template <class S>
[[gnu::always_inline]] inline typename S::V load_partial(const float* p, std::int64_t rest) {
  float buf[S::W] = {};
  for (std::int64_t i = 0; i < rest; ++i) buf[i] = p[i];
  return S::load(buf);
}
template <class S>
[[gnu::always_inline]] inline void store_partial(float* p, typename S::V v, std::int64_t rest) {
  float buf[S::W];
  S::store(buf, v);
  for (std::int64_t i = 0; i < rest; ++i) p[i] = buf[i];
}

// The softmax exponential exp(x) for x <= 0 (and for masked scores around kMasked), with exp(x) = 0 exactly for
// x <= -87 (exp(-87) = 1.6e-38 is below anything a softmax sum of terms >= 1 can register). Float:
// x = n ln2 + r with |r| <= ln2/2 (n by rounding x log2 e with the 1.5 * 2^23 trick, exact because
// |x log2 e| < 2^22; ln2 split in two, Cody-Waite, so that n times the high part is exact), exp(r) by its
// degree-7 Taylor polynomial (truncation r^8/8! < 6e-9 relative, below float's 6e-8; measured worst error of
// the whole function 7e-8 relative), times 2^n built in the exponent bits (n >= -126: a normal float).
// Arguments above 88 are clamped (they do not occur: x = score - running max, or score - lse). Double (the
// scalar reference-grade path): std::exp.
template <class S>
[[gnu::always_inline]] inline typename S::V exp_poly(typename S::V x) {
  using V = typename S::V;
  using T = typename S::T;
  if constexpr (std::is_same_v<T, double>) {
    return std::exp(x);
  } else {
    const V lowest = S::set1(-87.0f);
    const typename S::VI alive = x > lowest;  // false for -87 and below, and for masked scores
    x = S::vmin(S::vmax(x, lowest), S::set1(88.0f));
    const V n = S::fma(x, S::set1(1.44269504088896341f), S::set1(12582912.0f)) - S::set1(12582912.0f);
    V r = S::fma(n, S::set1(-0.693145751953125f), x);
    r = S::fma(n, S::set1(-1.42860682030941723212e-6f), r);
    V p = S::set1(1.0f / 5040.0f);
    p = S::fma(p, r, S::set1(1.0f / 720.0f));
    p = S::fma(p, r, S::set1(1.0f / 120.0f));
    p = S::fma(p, r, S::set1(1.0f / 24.0f));
    p = S::fma(p, r, S::set1(1.0f / 6.0f));
    p = S::fma(p, r, S::set1(0.5f));
    p = S::fma(p, r, S::set1(1.0f));
    p = S::fma(p, r, S::set1(1.0f));
    const V two_n = S::from_bits((S::to_int(n) + 127) << 23);  // n in [-126, 127]
    return S::select(alive, p * two_n, S::set1(0.0f));
  }
}

