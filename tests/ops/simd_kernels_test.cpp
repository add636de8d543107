// The vectorised row kernels (ops/simd/elementwise.hpp) on every instruction-set path this CPU can run, against
// plain double-precision references written here, on lengths around the vector widths (tails of every size).
//
// Tolerances, float against double (u = 2^-24 ~ 6e-8):
//  - sums over n terms (sum of squares, dot products, the softmax denominator) err by at most ~n u times the sum
//    of |terms| in the worst case, ~sqrt(n) u typically; with n <= 1000 that is < 6e-5 relative to the sum of
//    |terms|, so 1e-5 relative + a tiny floor (the lane-wise sums of these paths stay well inside);
//  - elementwise products: a few roundings, < 4 u relative: 1e-6;
//  - exp (softmax, sigmoid): the polynomial's 7e-8 relative error plus the roundings around it: 1e-6 relative;
//    the SwiGLU gradient combines ~6 such factors: 2e-6.
// A wrong formula, a lost tail element or a lane read twice moves results by far more than these.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "zebra/ops/simd/elementwise.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace simd {
// For test names and messages (gtest finds it next to the type).
void PrintTo(const Isa& isa, std::ostream* os) { *os << to_string(isa); }
}  // namespace simd

namespace {

using simd::Isa;

std::vector<float> random_floats(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

const std::int64_t kLengths[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1000};

class SimdKernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!simd::isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU cannot run the " << simd::to_string(GetParam())
                   << " path (AVX-512 F/BW/VL/DQ missing); its lane layout and tails are covered by "
                      "avx512-layout-on-avx2";
    }
  }
  const simd::ElementwiseKernels& k() const { return simd::elementwise_kernels(GetParam()); }
};

TEST_P(SimdKernelTest, Reductions) {
  for (std::int64_t n : kLengths) {
    SCOPED_TRACE(n);
    const auto a = random_floats(n, 1), b = random_floats(n, 2), c = random_floats(n, 3);
    double ss = 0, sabs = 0, d3 = 0, d3abs = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      ss += static_cast<double>(a[u]) * a[u];
      const double t = static_cast<double>(a[u]) * b[u] * c[u];
      d3 += t;
      d3abs += std::fabs(t);
    }
    sabs = ss;
    EXPECT_NEAR(k().sum_squares(a.data(), n), ss, 1e-5 * sabs + 1e-30);
    EXPECT_NEAR(k().dot3(a.data(), b.data(), c.data(), n), d3, 1e-5 * d3abs + 1e-30);
  }
}

TEST_P(SimdKernelTest, RmsNormRows) {
  for (std::int64_t n : kLengths) {
    SCOPED_TRACE(n);
    const auto x = random_floats(n, 4), g = random_floats(n, 5), dy = random_floats(n, 6);
    const float r = 0.7f, c = -0.3f;
    std::vector<float> y(static_cast<std::size_t>(n)), dx(y.size()), dw(y.size(), 0.5f);
    k().scale_mul(y.data(), x.data(), r, g.data(), n);
    k().rms_backward_row(dx.data(), dw.data(), dy.data(), x.data(), g.data(), r, c, n);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const double want_y = static_cast<double>(x[u]) * r * g[u];
      const double want_dx = static_cast<double>(r) * g[u] * dy[u] - static_cast<double>(x[u]) * c;
      const double want_dw = 0.5 + static_cast<double>(dy[u]) * x[u] * r;
      EXPECT_NEAR(y[u], want_y, 1e-6 * std::fabs(want_y) + 1e-30) << i;
      // dx is a difference of two products: error relative to the larger of them.
      const double scale_dx =
          std::fabs(static_cast<double>(r) * g[u] * dy[u]) + std::fabs(static_cast<double>(x[u]) * c);
      EXPECT_NEAR(dx[u], want_dx, 1e-6 * scale_dx + 1e-30) << i;
      EXPECT_NEAR(dw[u], want_dw, 1e-6 * (0.5 + std::fabs(want_dw - 0.5))) << i;
    }
  }
}

TEST_P(SimdKernelTest, SwiGluForwardAndBackward) {
  for (std::int64_t n : kLengths) {
    SCOPED_TRACE(n);
    // Gates over a wide range, including the far tails where exp saturates (|g| > 88).
    auto gate = random_floats(n, 7, 4.0);
    if (n >= 2) {
      gate[0] = -100.0f;
      gate[1] = 100.0f;
    }
    const auto up = random_floats(n, 8), dy = random_floats(n, 9);
    std::vector<float> y(static_cast<std::size_t>(n)), dg(y.size()), du(y.size());
    k().swiglu(y.data(), gate.data(), up.data(), n);
    k().swiglu_backward(dg.data(), du.data(), dy.data(), gate.data(), up.data(), n);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const double g = gate[u], s = 1.0 / (1.0 + std::exp(-g));
      const double want_y = g * s * up[u];
      const double want_du = dy[u] * g * s;
      const double want_dg = dy[u] * up[u] * s * (1.0 + g * (1.0 - s));
      EXPECT_NEAR(y[u], want_y, 1e-6 * std::fabs(want_y) + 1e-30) << "g " << g;
      EXPECT_NEAR(du[u], want_du, 1e-6 * std::fabs(want_du) + 1e-30) << "g " << g;
      // 1 + g (1 - s) cancels for large negative g: bound by the magnitude of its terms.
      const double scale_dg = std::fabs(dy[u] * up[u] * s) * (1.0 + std::fabs(g * (1.0 - s)));
      EXPECT_NEAR(dg[u], want_dg, 2e-6 * scale_dg + 1e-30) << "g " << g;
    }
  }
}

TEST_P(SimdKernelTest, Softmax) {
  for (std::int64_t n : kLengths) {
    SCOPED_TRACE(n);
    auto z = random_floats(n, 10, 5.0);
    if (n >= 3) z[2] = -200.0f;  // underflows to an exact 0
    std::vector<double> want(z.size());
    double mx = z[0];
    for (float v : z) mx = std::max(mx, static_cast<double>(v));
    double sum = 0;
    for (std::size_t i = 0; i < z.size(); ++i) sum += want[i] = std::exp(z[i] - mx);
    k().softmax(z.data(), n);
    double total = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
      EXPECT_NEAR(z[i], want[i] / sum, 1e-6 * want[i] / sum + 1e-7 / static_cast<double>(n)) << i;
      total += z[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

TEST_P(SimdKernelTest, AdamW) {
  for (std::int64_t n : kLengths) {
    SCOPED_TRACE(n);
    auto p = random_floats(n, 11, 0.1), m = random_floats(n, 12, 0.01), v = random_floats(n, 13, 0.01);
    for (float& x : v) x = x * x;
    const auto g = random_floats(n, 14, 0.1);
    const simd::AdamWScalars s{0.9f, 0.95f, 1.5f, 2.5f, 1e-2f, 1e-8f, 0.1f, 0.5f};
    std::vector<double> wp(p.begin(), p.end()), wm(m.begin(), m.end()), wv(v.begin(), v.end());
    std::vector<double> m_scale(wp.size()), p_scale(wp.size());
    for (std::size_t i = 0; i < wp.size(); ++i) {
      const double gg = static_cast<double>(g[i]) * s.gs;
      // m may cancel: its error is relative to the terms, not to the result.
      m_scale[i] = std::fabs(s.b1 * wm[i]) + std::fabs((1.0 - s.b1) * gg);
      wm[i] = s.b1 * wm[i] + (1.0 - s.b1) * gg;
      wv[i] = s.b2 * wv[i] + (1.0 - s.b2) * gg * gg;
      const double update = wm[i] * s.c1 / (std::sqrt(wv[i] * s.c2) + s.eps) + s.wd * wp[i];
      p_scale[i] = std::fabs(wp[i]) + s.lr * (std::fabs(update) + std::fabs(s.wd * wp[i]));
      wp[i] -= s.lr * update;
    }
    k().adamw(p.data(), g.data(), m.data(), v.data(), n, s);
    for (std::size_t i = 0; i < wp.size(); ++i) {
      EXPECT_NEAR(m[i], wm[i], 1e-6 * m_scale[i]);
      EXPECT_NEAR(v[i], wv[i], 1e-6 * std::fabs(wv[i]));
      // m / sqrt(v) carries m's error relative to m's terms, times the step: bound by lr * (terms / |m|).
      EXPECT_NEAR(p[i], wp[i], 1e-6 * p_scale[i] + s.lr * 1e-6 * m_scale[i] / (std::fabs(wm[i]) + 1e-30)) << i;
    }
  }
}

std::string isa_name(const ::testing::TestParamInfo<Isa>& info) {
  std::string s = simd::to_string(info.param);
  for (char& ch : s) {
    if (ch == '-') ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Paths, SimdKernelTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512OnAvx2), isa_name);

}  // namespace
}  // namespace zebra
