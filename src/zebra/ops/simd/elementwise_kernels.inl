// Row kernels of simd/elementwise.hpp over a SIMD traits class `S`, included once per instruction set by
// simd/elementwise.cpp inside that set's target region. Each loop runs over whole vectors, then the last n % W
// elements one at a time with the same formulas in S::T.

#include "zebra/ops/simd/math.inl"

template <class S>
float sum_squares(const float* x, std::int64_t n) {
  using V = typename S::V;
  V acc0 = S::set1(0.0f), acc1 = S::set1(0.0f);  // two chains hide the FMA latency
  std::int64_t i = 0;
  for (; i + 2 * S::W <= n; i += 2 * S::W) {
    const V a = S::load(x + i), b = S::load(x + i + S::W);
    acc0 = S::fma(a, a, acc0);
    acc1 = S::fma(b, b, acc1);
  }
  for (; i + S::W <= n; i += S::W) {
    const V a = S::load(x + i);
    acc0 = S::fma(a, a, acc0);
  }
  if (i < n) {
    const V a = load_partial<S>(x + i, n - i);
    acc1 = S::fma(a, a, acc1);
  }
  return S::hsum(acc0 + acc1);
}

template <class S>
void scale_mul(float* y, const float* x, float r, const float* g, std::int64_t n) {
  const typename S::V rv = S::set1(r);
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) S::store(y + i, S::load(x + i) * rv * S::load(g + i));
  for (; i < n; ++i) y[i] = x[i] * r * g[i];
}

template <class S>
float dot3(const float* a, const float* b, const float* c, std::int64_t n) {
  using V = typename S::V;
  V acc0 = S::set1(0.0f), acc1 = S::set1(0.0f);
  std::int64_t i = 0;
  for (; i + 2 * S::W <= n; i += 2 * S::W) {
    acc0 = S::fma(S::load(a + i) * S::load(b + i), S::load(c + i), acc0);
    acc1 = S::fma(S::load(a + i + S::W) * S::load(b + i + S::W), S::load(c + i + S::W), acc1);
  }
  for (; i + S::W <= n; i += S::W) acc0 = S::fma(S::load(a + i) * S::load(b + i), S::load(c + i), acc0);
  if (i < n) {
    acc1 = S::fma(load_partial<S>(a + i, n - i) * load_partial<S>(b + i, n - i), load_partial<S>(c + i, n - i),
                  acc1);
  }
  return S::hsum(acc0 + acc1);
}

template <class S>
void rms_backward_row(float* dx, float* dw, const float* dy, const float* x, const float* g, float r, float c,
                      std::int64_t n) {
  using V = typename S::V;
  const V rv = S::set1(r), cv = S::set1(c);
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    const V dyv = S::load(dy + i), xv = S::load(x + i);
    S::store(dx + i, rv * S::load(g + i) * dyv - xv * cv);
    S::store(dw + i, S::fma(dyv * xv, rv, S::load(dw + i)));
  }
  for (; i < n; ++i) {
    dx[i] = r * g[i] * dy[i] - x[i] * c;
    dw[i] += dy[i] * x[i] * r;
  }
}

// sigmoid(g) = 1 / (1 + exp(-g)); exp_poly clamps its argument to [-87, 88], so for g < -88 the result is
// 1 / (1 + e^88) ~ 6e-39 instead of smaller still, and silu(g) = g s ~ -5e-37: zero for every purpose.
template <class S>
[[gnu::always_inline]] inline typename S::V sigmoid(typename S::V g) {
  const typename S::V one = S::set1(1.0f);
  return one / (one + exp_poly<S>(S::set1(0.0f) - g));
}

template <class S>
void swiglu(float* y, const float* gate, const float* up, std::int64_t n) {
  using V = typename S::V;
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    const V g = S::load(gate + i);
    S::store(y + i, g * sigmoid<S>(g) * S::load(up + i));
  }
  if (i < n) {
    const V g = load_partial<S>(gate + i, n - i);
    store_partial<S>(y + i, g * sigmoid<S>(g) * load_partial<S>(up + i, n - i), n - i);
  }
}

template <class S>
void swiglu_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up,
                     std::int64_t n) {
  using V = typename S::V;
  const V one = S::set1(1.0f);
  auto step = [&](V g, V u, V d, V& dg, V& du) {
    const V s = sigmoid<S>(g);
    du = d * (g * s);
    dg = d * u * s * (one + g * (one - s));
  };
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    V dg, du;
    step(S::load(gate + i), S::load(up + i), S::load(dy + i), dg, du);
    S::store(dgate + i, dg);
    S::store(dup + i, du);
  }
  if (i < n) {
    const std::int64_t rest = n - i;
    V dg, du;
    step(load_partial<S>(gate + i, rest), load_partial<S>(up + i, rest), load_partial<S>(dy + i, rest), dg, du);
    store_partial<S>(dgate + i, dg, rest);
    store_partial<S>(dup + i, du, rest);
  }
}

template <class S>
void softmax(float* z, std::int64_t n) {
  using V = typename S::V;
  if (n <= 0) return;
  V mv = S::set1(z[0]);
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) mv = S::vmax(mv, S::load(z + i));
  float mx = S::hmax(mv);
  for (std::int64_t k = i; k < n; ++k) mx = z[k] > mx ? z[k] : mx;
  const V mxv = S::set1(mx);
  V sum = S::set1(0.0f);
  i = 0;
  for (; i + S::W <= n; i += S::W) {
    const V e = exp_poly<S>(S::load(z + i) - mxv);
    S::store(z + i, e);
    sum = sum + e;
  }
  if (i < n) {
    // The padding lanes hold exp(0 - mx): zero them before they reach the sum.
    const std::int64_t rest = n - i;
    const V e = exp_poly<S>(load_partial<S>(z + i, rest) - mxv);
    store_partial<S>(z + i, e, rest);
    float buf[S::W];
    S::store(buf, e);
    for (std::int64_t k = rest; k < S::W; ++k) buf[k] = 0.0f;
    sum = sum + S::load(buf);
  }
  // sum >= 1: the maximum contributes exp(0) = 1.
  const float inv_sum = 1.0f / S::hsum(sum);
  const V inv = S::set1(inv_sum);
  i = 0;
  for (; i + S::W <= n; i += S::W) S::store(z + i, S::load(z + i) * inv);
  for (; i < n; ++i) z[i] *= inv_sum;
}

template <class S>
void adamw(float* params, const float* grads, float* m, float* v, std::int64_t n, const AdamWScalars& a) {
  using V = typename S::V;
  const V b1 = S::set1(a.b1), b2 = S::set1(a.b2), ob1 = S::set1(1.0f - a.b1), ob2 = S::set1(1.0f - a.b2);
  const V c1 = S::set1(a.c1), c2 = S::set1(a.c2), lr = S::set1(a.lr), eps = S::set1(a.eps), wd = S::set1(a.wd);
  const V gs = S::set1(a.gs);
  std::int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    const V g = S::load(grads + i) * gs;
    const V mv = b1 * S::load(m + i) + ob1 * g;
    const V vv = b2 * S::load(v + i) + ob2 * g * g;
    S::store(m + i, mv);
    S::store(v + i, vv);
    const V p = S::load(params + i);
    S::store(params + i, p - lr * ((mv * c1) / (S::vsqrt(vv * c2) + eps) + wd * p));
  }
  for (; i < n; ++i) {
    const float g = grads[i] * a.gs;
    m[i] = a.b1 * m[i] + (1.0f - a.b1) * g;
    v[i] = a.b2 * v[i] + (1.0f - a.b2) * g * g;
    params[i] -= a.lr * ((m[i] * a.c1) / (std::sqrt(v[i] * a.c2) + a.eps) + a.wd * params[i]);
  }
}

// The table of this path: function addresses only, so it is initialised at compile time and no code of the
// path runs before dispatch has checked that the CPU supports it.
template <class S>
constexpr ElementwiseKernels kKernelTable{&sum_squares<S>, &scale_mul<S>,       &dot3<S>,   &rms_backward_row<S>,
                                          &swiglu<S>,      &swiglu_backward<S>, &softmax<S>, &adamw<S>};
