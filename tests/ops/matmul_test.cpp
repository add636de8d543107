// ops/matmul.hpp beyond the plain products (those are in ops_grad_test.cpp): the thread-spreading backends and
// the BF16 option.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "zebra/ops/matmul.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

std::vector<float> random_floats(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

// Every backend computes each output element as one K sum (chunks split M or N, never K), so they agree to
// rounding (the BLAS kernels order an edge block's sums differently), and the chunked product is bit-identical
// for 1 and 2 threads; transposed operands and beta = 1 included, on shapes large enough to be chunked and
// small enough to run on one thread.
TEST(Gemm, BackendsAgreeAndChunkedIsThreadCountIndependent) {
  ComputeOptions options;
  options.threads = 2;
  struct Shape {
    std::int64_t m, n, k;
  };
  for (const Shape s : {Shape{700, 300, 96}, Shape{300, 700, 96}, Shape{512, 256, 1024}, Shape{20, 30, 40}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE(testing::Message() << s.m << "x" << s.n << "x" << s.k << " ta " << ta << " tb " << tb);
        const auto a = random_floats(s.m * s.k, 1), b = random_floats(s.k * s.n, 2), c0 = random_floats(s.m * s.n, 3);
        const std::int64_t lda = ta ? s.m : s.k, ldb = tb ? s.k : s.n;
        std::vector<std::vector<float>> results;
        for (GemmBackend be : {GemmBackend::kBlasThreads, GemmBackend::kChunked, GemmBackend::kAuto}) {
          options.gemm = be;
          std::vector<float> c = c0;
          gemm<float>(ta, tb, s.m, s.n, s.k, 0.5f, a.data(), lda, b.data(), ldb, 1.0f, c.data(), s.n, options);
          results.push_back(c);
        }
        ComputeOptions one_thread = options;
        one_thread.gemm = GemmBackend::kChunked;
        one_thread.threads = 1;
        std::vector<float> one = c0;
        gemm<float>(ta, tb, s.m, s.n, s.k, 0.5f, a.data(), lda, b.data(), ldb, 1.0f, one.data(), s.n, one_thread);
        EXPECT_EQ(one, results[1]);
        // And against a plain double product.
        for (std::int64_t i = 0; i < s.m; i += 37) {
          for (std::int64_t j = 0; j < s.n; j += 29) {
            double want = c0[static_cast<std::size_t>(i * s.n + j)], terms = std::fabs(want);
            for (std::int64_t p = 0; p < s.k; ++p) {
              const double x = ta ? a[static_cast<std::size_t>(p * lda + i)] : a[static_cast<std::size_t>(i * lda + p)];
              const double y = tb ? b[static_cast<std::size_t>(j * ldb + p)] : b[static_cast<std::size_t>(p * ldb + j)];
              want += 0.5 * x * y;
              terms += std::fabs(0.5 * x * y);
            }
            // K-term float sum: |error| <= ~K u sum|terms|, u = 2^-24 (6e-8).
            for (const auto& r : results)
              EXPECT_NEAR(r[static_cast<std::size_t>(i * s.n + j)], want, 6e-8 * s.k * terms);
          }
        }
      }
    }
  }
}

// ---- BF16 ---------------------------------------------------------------------------------------------------

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(round_to_bf16(1.0f + 0x1.0p-8f), 1.0f);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(round_to_bf16(1.0f + 3.0f * 0x1.0p-8f), 1.0f + 0x1.0p-6f);
  EXPECT_EQ(round_to_bf16(1.0f + 0x1.0p-8f + 0x1.0p-20f), 1.0f + 0x1.0p-7f);  // above halfway: up
  EXPECT_EQ(round_to_bf16(-2.5f), -2.5f);                                     // exactly representable
  EXPECT_EQ(round_to_bf16(0.0f), 0.0f);
  EXPECT_TRUE(std::isinf(round_to_bf16(3.4e38f)));  // beyond the largest bf16 (~3.39e38): infinity
  EXPECT_TRUE(std::isinf(round_to_bf16(INFINITY)));
  EXPECT_TRUE(std::isnan(round_to_bf16(NAN)));
  // The vector version agrees with the scalar one, in place too.
  auto v = random_floats(1000, 20, 100.0);
  v[3] = NAN;
  std::vector<float> r(v.size());
  round_to_bf16(r.data(), v.data(), static_cast<std::int64_t>(v.size()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float want = round_to_bf16(v[i]);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(r[i]));
    } else {
      EXPECT_EQ(r[i], want) << i;
      // Relative rounding error of bf16 (8 significant bits, unit roundoff 2^-8): <= 2^-8.
      EXPECT_LE(std::fabs(r[i] - v[i]), 0x1.0p-8 * std::fabs(v[i]));
    }
  }
}

// BF16 products equal fp32 products of the rounded inputs (every product of two bf16 values is exact in fp32;
// only the summation order may differ, between chunks of rows), on sizes that cross the 1024-row chunks.
TEST(Bf16, MatmulEqualsFp32ProductOfRoundedInputs) {
  const std::int64_t n = 1500, in = 48, out = 40;
  const auto x = random_floats(n * in, 21), w = random_floats(out * in, 22), dy = random_floats(n * out, 23);
  std::vector<float> xr(x.size()), wr(w.size()), dyr(dy.size());
  round_to_bf16(xr.data(), x.data(), static_cast<std::int64_t>(x.size()));
  round_to_bf16(wr.data(), w.data(), static_cast<std::int64_t>(w.size()));
  round_to_bf16(dyr.data(), dy.data(), static_cast<std::int64_t>(dy.size()));
  MatmulOptions bf16;
  bf16.bf16 = true;
  std::vector<float> y(static_cast<std::size_t>(n * out)), y_ref(y.size());
  matmul_forward(y.data(), x.data(), w.data(), n, in, out, bf16);
  matmul_forward(y_ref.data(), xr.data(), wr.data(), n, in, out);
  std::vector<float> dx(static_cast<std::size_t>(n * in)), dx_ref(dx.size());
  std::vector<float> dw(static_cast<std::size_t>(out * in), 1.0f), dw_ref(dw.size(), 1.0f);
  matmul_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out, bf16);
  matmul_backward(dx_ref.data(), dw_ref.data(), dyr.data(), xr.data(), wr.data(), n, in, out);
  // K-term fp32 sums of O(1) terms in another order: |difference| <= ~2 K u sum|terms| ~ K^1.5 u, K <= 1500.
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-4) << i;
  for (std::size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx[i], dx_ref[i], 1e-4) << i;
  for (std::size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-2) << i;
  // And they differ from the unrounded fp32 products by about bf16's precision (2^-8 relative per input).
  std::vector<float> y32(y.size());
  matmul_forward(y32.data(), x.data(), w.data(), n, in, out);
  double max_diff = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(y[i]) - y32[i]));
  EXPECT_GT(max_diff, 1e-4);  // the option did round
  EXPECT_LT(max_diff, 0.3);   // ~ sqrt(in) * 2 * 2^-8 * O(1) terms, a few standard deviations out
}

}  // namespace
}  // namespace zebra
