// The 16-bit storage kernels of simd/weight_kernels.hpp over a SIMD traits class `S` and a storage type `H`
// (Bf16Storage / F16Storage below), included once per instruction set by simd/weight_kernels.cpp inside that
// set's target region.

#include "zebra/ops/simd/math.inl"

struct Bf16Storage {
  template <class S>
  static typename S::V load(const std::uint16_t* p) {
    return S::load_bf16(p);
  }
  template <class S>
  static void store(std::uint16_t* p, typename S::V v) {
    S::store_bf16(p, v);
  }
  static float to_float(std::uint16_t h) { return bf16_to_float(h); }
  static std::uint16_t from_float(float x) { return float_to_bf16(x); }
};

struct F16Storage {
  template <class S>
  static typename S::V load(const std::uint16_t* p) {
    return S::load_f16(p);
  }
  template <class S>
  static void store(std::uint16_t* p, typename S::V v) {
    S::store_f16(p, v);
  }
  static float to_float(std::uint16_t h) { return f16_to_float(h); }
  static std::uint16_t from_float(float x) { return float_to_f16(x); }
};

// A vector of the first `rest` < W values of p converted (the others zero): the tail of a weight row.
template <class S, class H>
[[gnu::always_inline]] inline typename S::V load_partial_16(const std::uint16_t* p, std::int64_t rest) {
  float buf[S::W] = {};
  for (std::int64_t i = 0; i < rest; ++i) buf[i] = H::to_float(p[i]);
  return S::load(buf);
}

// NB activation rows against one weight row w [cols]: out[i * ldo] for i < NB. Two accumulator chains per
// activation row (hiding the FMA latency); the weight vector is converted once and used by all NB rows.
template <class S, class H, int NB>
[[gnu::always_inline]] inline void gemv_row(float* out, std::int64_t ldo, const float* inp,
                                            const std::uint16_t* w, std::int64_t cols) {
  using V = typename S::V;
  V acc0[NB], acc1[NB];
  for (int i = 0; i < NB; ++i) acc0[i] = acc1[i] = S::set1(0.0f);
  std::int64_t k = 0;
  for (; k + 2 * S::W <= cols; k += 2 * S::W) {
    const V w0 = H::template load<S>(w + k), w1 = H::template load<S>(w + k + S::W);
    for (int i = 0; i < NB; ++i) {
      acc0[i] = S::fma(w0, S::load(inp + i * cols + k), acc0[i]);
      acc1[i] = S::fma(w1, S::load(inp + i * cols + k + S::W), acc1[i]);
    }
  }
  if (k + S::W <= cols) {
    const V w0 = H::template load<S>(w + k);
    for (int i = 0; i < NB; ++i) acc0[i] = S::fma(w0, S::load(inp + i * cols + k), acc0[i]);
    k += S::W;
  }
  if (k < cols) {
    const V w1 = load_partial_16<S, H>(w + k, cols - k);
    for (int i = 0; i < NB; ++i) acc1[i] = S::fma(w1, load_partial<S>(inp + i * cols + k, cols - k), acc1[i]);
  }
  for (int i = 0; i < NB; ++i) out[i * ldo] = S::hsum(acc0[i] + acc1[i]);
}

template <class S, class H, int NB>
void gemv_rows(float* out, std::int64_t ldo, const float* inp, const std::uint16_t* w, std::int64_t w_stride,
               std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) gemv_row<S, H, NB>(out + r, ldo, inp, w + r * w_stride, cols);
}

template <class S, class H>
void gemv(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const std::uint16_t* w,
          std::int64_t w_stride, std::int64_t rows, std::int64_t cols) {
  static_assert(kGemvBlockRows == 4, "gemv instantiates 1..4 activation rows");
  switch (n) {
    case 1:
      gemv_rows<S, H, 1>(out, ldo, inp, w, w_stride, rows, cols);
      break;
    case 2:
      gemv_rows<S, H, 2>(out, ldo, inp, w, w_stride, rows, cols);
      break;
    case 3:
      gemv_rows<S, H, 3>(out, ldo, inp, w, w_stride, rows, cols);
      break;
    case 4:
      gemv_rows<S, H, 4>(out, ldo, inp, w, w_stride, rows, cols);
      break;
    default:
      break;  // n is checked by the caller (0 < n <= kGemvBlockRows)
  }
}

template <class S, class H>
void to_f32(float* dst, const std::uint16_t* src, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) S::store(dst + i, H::template load<S>(src + i));
  for (; i < n; ++i) dst[i] = H::to_float(src[i]);
}

template <class S, class H>
void from_f32(std::uint16_t* dst, const float* src, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) H::template store<S>(dst + i, S::load(src + i));
  for (; i < n; ++i) dst[i] = H::from_float(src[i]);
}

template <class S, class H>
inline constexpr HalfKernels kHalfKernels{&gemv<S, H>, &to_f32<S, H>, &from_f32<S, H>};
