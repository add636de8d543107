// Every op except attention (tests/ops/attention_test.cpp) against a plain double-precision
// reference written here, and its backward against central finite differences in double.
//
// Finite-difference tolerance: with step h = 1e-6 on O(1) inputs, truncation is ~h^2 |f'''| ~ 1e-12
// and rounding ~ eps |f| / h ~ 1e-10 (|f| ~ 1 for the random projection losses used), so
// |fd - analytic| <= 1e-7 (1 + |g|) has three orders of margin and fails on any wrong term.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <vector>

#include "zebra/ops/adamw.hpp"
#include "zebra/ops/cross_entropy.hpp"
#include "zebra/ops/embedding.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using Vec = std::vector<double>;

Vec random_vec(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Vec v(n);
  for (double& x : v) x = scale * rng.normal();
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks d(loss)/d(x) for loss(x) = f(x) . w, where `analytic` is the op's backward result.
void check_fd(Vec& x, const std::function<double()>& loss, const Vec& analytic, const char* what) {
  const double h = 1e-6;
  ASSERT_EQ(x.size(), analytic.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    ASSERT_NEAR(analytic[i], (up - down) / (2 * h), 1e-7 * (1 + std::abs(analytic[i]))) << what << " index " << i;
  }
}

// Float result against a double reference: float GEMM/reductions over K terms of size ~1 err by about
// K * 2^-24 * (sum of |terms|); with K <= 200 that is < 2e-5, so abs 1e-4 + rel 1e-4.
void expect_close_float(const std::vector<float>& got, const Vec& ref, double abs = 1e-4, double rel = 1e-4) {
  ASSERT_EQ(got.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], abs + rel * std::abs(ref[i])) << i;
}

std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

TEST(Matmul, ForwardMatchesNaiveAndBackwardMatchesFd) {
  const std::int64_t n = 7, ic = 13, oc = 5;
  Vec x = random_vec(n * ic, 1), w = random_vec(oc * ic, 2), proj = random_vec(n * oc, 3);
  Vec ref(n * oc, 0.0);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t o = 0; o < oc; ++o)
      for (std::int64_t i = 0; i < ic; ++i) ref[r * oc + o] += x[r * ic + i] * w[o * ic + i];
  std::vector<float> outf(n * oc);
  auto xf = to_float(x), wf = to_float(w);
  matmul_forward(outf.data(), xf.data(), wf.data(), n, ic, oc);
  expect_close_float(outf, ref);

  auto loss = [&] {
    Vec out(n * oc);
    matmul_forward(out.data(), x.data(), w.data(), n, ic, oc);
    return dot(out, proj);
  };
  Vec dx(n * ic, 5.0), dw(oc * ic, 0.0);  // dx is overwritten, dw accumulates
  matmul_backward(dx.data(), dw.data(), proj.data(), x.data(), w.data(), n, ic, oc);
  check_fd(x, loss, dx, "dinp");
  check_fd(w, loss, dw, "dweight");
  Vec dw2(oc * ic, 1.0);
  matmul_backward<double>(nullptr, dw2.data(), proj.data(), x.data(), w.data(), n, ic, oc);
  for (std::size_t i = 0; i < dw.size(); ++i) ASSERT_NEAR(dw2[i], dw[i] + 1.0, 1e-12);
}

TEST(RmsNorm, ForwardMatchesReferenceAndBackwardMatchesFd) {
  const std::int64_t n = 5, d = 33;
  const double eps = 1e-5;
  Vec x = random_vec(n * d, 4), g = random_vec(d, 5), proj = random_vec(n * d, 6);
  Vec ref(n * d);
  for (std::int64_t r = 0; r < n; ++r) {
    double ms = 0;
    for (std::int64_t i = 0; i < d; ++i) ms += x[r * d + i] * x[r * d + i];
    const double rs = 1.0 / std::sqrt(ms / d + eps);
    for (std::int64_t i = 0; i < d; ++i) ref[r * d + i] = x[r * d + i] * rs * g[i];
  }
  std::vector<float> outf(n * d), rstdf(n);
  auto xf = to_float(x), gf = to_float(g);
  rmsnorm_forward(outf.data(), rstdf.data(), xf.data(), gf.data(), n, d, eps);
  expect_close_float(outf, ref);

  Vec rstd(n);
  auto loss = [&] {
    Vec out(n * d);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), g.data(), n, d, eps);
    return dot(out, proj);
  };
  loss();
  Vec dx(n * d, 3.0), dg(d, 0.0);
  rmsnorm_backward(dx.data(), dg.data(), proj.data(), x.data(), g.data(), rstd.data(), n, d);
  check_fd(x, loss, dx, "dx");
  check_fd(g, loss, dg, "dweight");
}

TEST(SwiGlu, ForwardMatchesReferenceAndBackwardMatchesFd) {
  const std::int64_t n = 4, f = 9;
  Vec gu = random_vec(n * 2 * f, 7, 2.0), proj = random_vec(n * f, 8);
  Vec ref(n * f);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t i = 0; i < f; ++i) {
      const double a = gu[r * 2 * f + i], b = gu[r * 2 * f + f + i];
      ref[r * f + i] = a / (1 + std::exp(-a)) * b;
    }
  std::vector<float> outf(n * f);
  auto guf = to_float(gu);
  swiglu_forward(outf.data(), guf.data(), n, f);
  expect_close_float(outf, ref, 1e-6, 1e-6);
  auto loss = [&] {
    Vec out(n * f);
    swiglu_forward(out.data(), gu.data(), n, f);
    return dot(out, proj);
  };
  Vec dgu(n * 2 * f, 9.0);
  swiglu_backward(dgu.data(), proj.data(), gu.data(), n, f);
  check_fd(gu, loss, dgu, "dgate_up");
}

struct RopeCase {
  RopeScaling scaling;
  double factor;
  double attention_factor = 0.0;  // kYarn: 0 = derived
  bool truncate = true;           // kYarn
};

// inv_freq and the cos/sin multiplier of transformers' rope_type formulas (modeling_rope_utils.py), written out
// here independently of ops/rope.cpp, in double. Tables are built for positions [0, seq_len), L0 = original.
struct RopeReference {
  std::vector<double> inv_freq;
  double scale = 1.0;
};

RopeReference rope_reference(const RopeParams& p, std::int64_t seq_len) {
  const double hd = static_cast<double>(p.head_dim), l0 = static_cast<double>(p.original_max_positions);
  double base = p.theta;
  if (p.scaling == RopeScaling::kNtk) base *= std::pow(p.factor, hd / (hd - 2));
  if (p.scaling == RopeScaling::kDynamic) {
    const double len = std::max(static_cast<double>(seq_len), l0);
    base *= std::pow(p.factor * len / l0 - (p.factor - 1), hd / (hd - 2));
  }
  RopeReference r;
  for (std::int64_t k = 0; k < p.head_dim / 2; ++k) {
    const double extrap = 1.0 / std::pow(base, 2.0 * k / hd);
    double f = extrap;
    if (p.scaling == RopeScaling::kLinear) f = extrap / p.factor;
    if (p.scaling == RopeScaling::kYarn) {
      // find_correction_dim / find_correction_range / linear_ramp_factor of transformers.
      auto dim_of = [&](double rot) { return hd * std::log(l0 / (rot * 2 * std::numbers::pi)) / (2 * std::log(base)); };
      double lo = dim_of(p.beta_fast), hi = dim_of(p.beta_slow);
      if (p.truncate) {
        lo = std::floor(lo);
        hi = std::ceil(hi);
      }
      lo = std::max(lo, 0.0);
      hi = std::min(hi, hd - 1);
      if (lo == hi) hi += 0.001;
      const double ramp = std::min(std::max((k - lo) / (hi - lo), 0.0), 1.0);
      const double extrap_factor = 1 - ramp;
      f = extrap / p.factor * (1 - extrap_factor) + extrap * extrap_factor;
    }
    r.inv_freq.push_back(f);
  }
  if (p.scaling == RopeScaling::kYarn) {
    r.scale = p.attention_factor > 0 ? p.attention_factor : 0.1 * std::log(p.factor) + 1.0;
  }
  return r;
}

class RopeTest : public ::testing::TestWithParam<RopeCase> {};

TEST_P(RopeTest, RotatesHalvesAndBackwardIsTheTranspose) {
  const std::int64_t n = 6, heads = 3, stride = heads * 32 + 5;  // a strided view
  for (std::int64_t hd : {8, 32}) {
    RopeParams p{hd, 10000.0, GetParam().scaling, GetParam().factor};
    p.original_max_positions = 16;  // the positions below reach past it
    p.attention_factor = GetParam().attention_factor;
    p.truncate = GetParam().truncate;
    const std::int64_t rows = 40;
    auto table = make_rope_table<double>(p, rows, rope_table_basis(p, rows));
    const RopeReference want = rope_reference(p, rows);
    const std::vector<double> inv_freq = rope_inv_freq(p, rows);
    ASSERT_EQ(inv_freq.size(), want.inv_freq.size());
    // Both sides evaluate the same double expressions in a different order: a few ulp.
    for (std::size_t k = 0; k < inv_freq.size(); ++k) ASSERT_NEAR(inv_freq[k], want.inv_freq[k], 1e-14) << k;
    EXPECT_NEAR(rope_attention_factor(p), want.scale, 1e-15);
    std::vector<std::int32_t> pos = {0, 1, 7, 13, 39, 2};
    Vec x = random_vec(n * stride, 9), proj = random_vec(n * stride, 10);
    // reference: pair (k, k + hd/2) rotates by pos * inv_freq[k], scaled by the attention factor
    Vec ref = x;
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t k = 0; k < hd / 2; ++k) {
          const double angle = pos[r] * want.inv_freq[k], c = want.scale * std::cos(angle),
                       sn = want.scale * std::sin(angle);
          const double a = x[r * stride + h * hd + k], b = x[r * stride + h * hd + k + hd / 2];
          ref[r * stride + h * hd + k] = a * c - b * sn;
          ref[r * stride + h * hd + k + hd / 2] = b * c + a * sn;
        }
    Vec y = x;
    rope_forward(y.data(), pos.data(), table, n, heads, stride);
    // angles up to 39 rad: cos/sin of them carry ~39 * 2^-53 absolute error on both sides.
    for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-12) << i;

    auto loss = [&] {
      Vec z = x;
      rope_forward(z.data(), pos.data(), table, n, heads, stride);
      return dot(z, proj);
    };
    Vec dx = proj;
    rope_backward(dx.data(), pos.data(), table, n, heads, stride);
    check_fd(x, loss, dx, "dx");
  }
}

INSTANTIATE_TEST_SUITE_P(Scalings, RopeTest,
                         ::testing::Values(RopeCase{RopeScaling::kNone, 1.0}, RopeCase{RopeScaling::kLinear, 4.0},
                                           RopeCase{RopeScaling::kNtk, 4.0}, RopeCase{RopeScaling::kDynamic, 3.0},
                                           RopeCase{RopeScaling::kYarn, 4.0},
                                           RopeCase{RopeScaling::kYarn, 16.0, 1.5, false}));

// Dynamic NTK is the plain RoPE up to the original length and raises the base past it, per pass length.
TEST(Rope, DynamicDependsOnThePassLength) {
  RopeParams p{16, 10000.0, RopeScaling::kDynamic, 2.0};
  p.original_max_positions = 32;
  RopeParams plain{16, 10000.0, RopeScaling::kNone, 1.0};
  EXPECT_EQ(rope_table_basis(p, 10), 32);
  EXPECT_EQ(rope_table_basis(p, 100), 100);
  EXPECT_EQ(rope_table_basis(plain, 100), 0);
  EXPECT_EQ(rope_inv_freq(p, 20), rope_inv_freq(plain, 20));
  const std::vector<double> longer = rope_inv_freq(p, 64);
  EXPECT_LT(longer.back(), rope_inv_freq(plain, 64).back());
  EXPECT_EQ(longer.front(), 1.0);
}

TEST(Rope, RejectsBadParameters) {
  RopeParams p{16, 10000.0, RopeScaling::kYarn, 2.0};  // no original length
  EXPECT_THROW(rope_inv_freq(p, 8), Error);
  p.original_max_positions = 32;
  p.theta = 1.0;  // ln(theta) = 0 in the correction range
  EXPECT_THROW(rope_inv_freq(p, 8), Error);
  p.theta = 10000.0;
  p.beta_fast = 0.0;
  EXPECT_THROW(rope_inv_freq(p, 8), Error);
  EXPECT_THROW(rope_inv_freq(RopeParams{16, 10000.0, RopeScaling::kLinear, 0.5}, 8), Error);
  EXPECT_THROW(rope_inv_freq(RopeParams{7, 10000.0, RopeScaling::kNone, 1.0}, 8), Error);
}

TEST(CrossEntropy, LossAndGradientWithIgnoredRows) {
  const std::int64_t rows = 5, vocab = 7;
  Vec logits = random_vec(rows * vocab, 11, 3.0);
  std::vector<std::int32_t> targets = {3, -1, 0, 6, -100};
  Vec ref_losses;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    double mx = -1e300, s = 0;
    for (std::int64_t v = 0; v < vocab; ++v) mx = std::max(mx, logits[r * vocab + v]);
    for (std::int64_t v = 0; v < vocab; ++v) s += std::exp(logits[r * vocab + v] - mx);
    ref_losses.push_back(std::log(s) + mx - logits[r * vocab + targets[r]]);
  }
  double ref = 0;
  for (double l : ref_losses) ref += l;
  auto loss = [&] {
    Vec probs = logits;
    std::int64_t valid = 0;
    return cross_entropy_forward(probs.data(), targets.data(), rows, vocab, &valid);
  };
  Vec probs = logits;
  std::int64_t valid = 0;
  EXPECT_NEAR(cross_entropy_forward(probs.data(), targets.data(), rows, vocab, &valid), ref, 1e-12);
  EXPECT_EQ(valid, 3);
  Vec dlogits(rows * vocab);
  cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), rows, vocab, 1.0);
  check_fd(logits, loss, dlogits, "dlogits");
  // in place (dlogits aliasing probs) and scaled
  cross_entropy_backward(probs.data(), probs.data(), targets.data(), rows, vocab, 0.5);
  for (std::size_t i = 0; i < probs.size(); ++i) ASSERT_NEAR(probs[i], 0.5 * dlogits[i], 1e-15);
}

TEST(Embedding, GathersAndScattersAndChecksIds) {
  const std::int64_t vocab = 6, d = 3;
  Vec table = random_vec(vocab * d, 12), dout = random_vec(4 * d, 13);
  std::vector<std::int32_t> tokens = {2, 5, 2, 0};
  Vec out(4 * d);
  embedding_forward(out.data(), tokens.data(), table.data(), 4, d, vocab);
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t i = 0; i < d; ++i) EXPECT_EQ(out[r * d + i], table[tokens[r] * d + i]);
  auto loss = [&] {
    Vec o(4 * d);
    embedding_forward(o.data(), tokens.data(), table.data(), 4, d, vocab);
    return dot(o, dout);
  };
  Vec dtable(vocab * d, 0.0);
  embedding_backward(dtable.data(), dout.data(), tokens.data(), 4, d);
  check_fd(table, loss, dtable, "dtable");
  tokens[1] = 6;
  EXPECT_THROW(embedding_forward(out.data(), tokens.data(), table.data(), 4, d, vocab), Error);
  tokens[1] = -1;
  EXPECT_THROW(embedding_forward(out.data(), tokens.data(), table.data(), 4, d, vocab), Error);
}

TEST(AdamW, MatchesTheUpdateRuleStepByStep) {
  AdamWHyper h{0.01, 0.9, 0.95, 1e-8, 0.1};
  Vec p = {0.5, -1.0, 2.0}, m(3, 0.0), v(3, 0.0);
  Vec rp = p, rm = m, rv = v;
  for (std::int64_t step = 1; step <= 3; ++step) {
    Vec g = random_vec(3, 20 + static_cast<std::uint64_t>(step));
    adamw_update(p.data(), g.data(), m.data(), v.data(), 3, h, step, true, 0.5);
    for (std::size_t i = 0; i < 3; ++i) {
      const double gi = 0.5 * g[i];
      rm[i] = 0.9 * rm[i] + 0.1 * gi;
      rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
      const double mh = rm[i] / (1 - std::pow(0.9, step)), vh = rv[i] / (1 - std::pow(0.95, step));
      rp[i] -= 0.01 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * rp[i]);
      EXPECT_NEAR(p[i], rp[i], 1e-14);
    }
  }
  // without decay the weight term is absent
  Vec q = {1.0}, qm = {0.0}, qv = {0.0}, zero = {0.0};
  adamw_update(q.data(), zero.data(), qm.data(), qv.data(), 1, h, 1, false);
  EXPECT_EQ(q[0], 1.0);
}

}  // namespace
}  // namespace zebra
