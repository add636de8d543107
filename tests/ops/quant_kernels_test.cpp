// The block-quantized products (ops/simd/quant_kernels.hpp through ops/weight_matmul.hpp) on every SIMD path
// this CPU runs: against the scalar reference kernel, and against the double product of the dequantised
// weights with the float activations.
//
// Tolerances (u = 2^-24; one output is sum over blocks b of t_b + o_b, with t_b = (dw_b d_b) * dot_b the
// scaled integer dot product and o_b = c_b sum_b the offset term, c_b = -8 dw (Q4_0) or m (Q4_1)):
//  - the integer dots, the activation quanta and scales are the same on every path (checked bit for bit);
//    a SIMD path scales partial integer sums of 4 products each (lanes), so its roundings are relative to
//    T = sum_b |dw_b d_b| sum_k |qw_k qa_k| + |o_b|, not to |t_b|: one for the scale product, one per FMA
//    into a lane (nblk of them), at most 5 for the lane sums (8 + 16 lanes) and one per offset term added,
//    so each path is within (2 nblk + 8) u T of the exact sum of the same terms and two paths differ by at
//    most twice that.
//  - against the double product sum_k w_k x_k: the activations are replaced by d_b q_k with
//    |x_k - d_b q_k| <= d_b / 2 + 3 u |x_k| (q = round(x * fl(127 / amax)), d = fl(amax / 127): three
//    roundings of x / d), so the difference is at most sum_k |w_k| (d_b / 2 + 3 u |x_k|) plus the float sums,
//    plus u sum_k |w_k x_k| because the reference's weights are the float dequantisation (one rounding of
//    d q + m for Q4_1).
// A wrong nibble order, a lost block, a swapped scale or an offset term counted twice moves a result by
// about one |w| d, far above the fp32 part and equal to the activation part only in a rare worst case; the
// exact-match checks of the quanta and the cross-path bound catch what the second bound could hide.
#include <gtest/gtest.h>

#include "ops/simd_path_test.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "zebra/ops/quant/blocks.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/ref/weight_matmul_ref.hpp"
#include "zebra/ops/simd/quant_kernels.hpp"
#include "zebra/ops/weight_kernels.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::random_floats;

constexpr double kU = 0x1.0p-24;

// A quantized matrix [rows, cols] of dtype, rows `pad_bytes` apart beyond their blocks (a strided view).
struct QuantWeight {
  std::vector<unsigned char> bytes;
  WeightMatrix w;
  QuantWeight(DType dtype, std::int64_t rows, std::int64_t cols, std::uint64_t seed, std::size_t pad_bytes = 0) {
    const std::size_t rb = dtype_row_bytes(dtype, cols) + pad_bytes;
    bytes.assign(rb * static_cast<std::size_t>(rows) + 1, 0xAB);
    Rng rng(seed);
    for (std::int64_t r = 0; r < rows; ++r) {
      unsigned char* row = bytes.data() + static_cast<std::size_t>(r) * rb;
      if (dtype == DType::kQ8_0 || dtype == DType::kQ4_0 || dtype == DType::kQ4_1) {
        // Rows with a per-row spread of magnitudes, and an offset for Q4_1's minimum to matter.
        std::vector<float> v = random_floats(cols, seed * 1000 + static_cast<std::uint64_t>(r), 0.05 * (1 + r % 3));
        for (float& x : v) x += 0.01f * static_cast<float>(r % 5);
        quant::quantize_row(dtype, v.data(), row, cols);
      } else {
        // K-quants: random bytes with small finite f16 super-block scales.
        for (std::size_t i = 0; i < dtype_row_bytes(dtype, cols); ++i)
          row[i] = static_cast<unsigned char>(rng.next_u64());
        const std::size_t bb = dtype_block_bytes(dtype);
        for (std::int64_t b = 0; b < cols / 256; ++b) {
          unsigned char* blk = row + static_cast<std::size_t>(b) * bb;
          const std::uint16_t d = float_to_f16(static_cast<float>(1e-3 * (1.0 + rng.uniform())));
          const std::uint16_t dmin = float_to_f16(static_cast<float>(1e-3 * rng.uniform()));
          if (dtype == DType::kQ6_K) {
            std::memcpy(blk + offsetof(quant::BlockQ6_K, d), &d, 2);
          } else {
            std::memcpy(blk, &d, 2);
            std::memcpy(blk + 2, &dmin, 2);
          }
        }
      }
    }
    w = WeightMatrix{dtype, bytes.data(), rows, cols, rb};
  }
};

class QuantPathTest : public test::PathTest {};

// Reads the parts of a quantized activation row (quant_kernels.hpp's layout).
struct ActParts {
  std::vector<std::int8_t> qs;
  std::vector<float> d, sum;
};
ActParts quantized(const float* x, std::int64_t cols, SimdPath path) {
  std::vector<unsigned char> buf(simd::act_row_bytes(cols));
  simd::quant_kernels(DType::kQ8_0, path).quantize_activations(buf.data(), x, cols);
  const std::int64_t nb = cols / simd::kActBlock;
  ActParts p;
  p.qs.resize(static_cast<std::size_t>(cols));
  p.d.resize(static_cast<std::size_t>(nb));
  p.sum.resize(static_cast<std::size_t>(nb));
  std::memcpy(p.qs.data(), buf.data(), static_cast<std::size_t>(cols));
  std::memcpy(p.d.data(), buf.data() + cols, static_cast<std::size_t>(nb) * 4);
  std::memcpy(p.sum.data(), buf.data() + cols + nb * 4, static_cast<std::size_t>(nb) * 4);
  return p;
}

TEST_P(QuantPathTest, ActivationQuantizationMatchesTheScalarReferenceBitForBit) {
  const std::int64_t cols = 32 * 7;
  auto x = random_floats(cols, 5, 3.0);
  for (std::int64_t k = 32; k < 64; ++k) x[static_cast<std::size_t>(k)] = 0.0f;  // an all-zero block
  x[70] = 1e-30f;                                                                // tiny magnitudes
  // A block whose values sit exactly on rounding ties of x * 127 / amax: amax = 127, x = k + 0.5.
  for (std::int64_t k = 0; k < 32; ++k) x[static_cast<std::size_t>(96 + k)] = static_cast<float>(k - 16) + 0.5f;
  x[96] = 127.0f;
  const ActParts want = quantized(x.data(), cols, SimdPath::kScalar);
  const ActParts got = quantized(x.data(), cols, GetParam());
  EXPECT_EQ(got.qs, want.qs);
  EXPECT_EQ(got.d, want.d);
  EXPECT_EQ(got.sum, want.sum);
  for (std::int64_t k = 0; k < cols; ++k) {
    const double d = want.d[static_cast<std::size_t>(k / 32)], xk = x[static_cast<std::size_t>(k)];
    ASSERT_LE(std::fabs(xk - d * want.qs[static_cast<std::size_t>(k)]), d / 2 + 3 * kU * std::fabs(xk)) << k;
  }
  EXPECT_EQ(want.qs[97], -14);  // -14.5 * 1 rounds to even
  EXPECT_EQ(want.qs[98], -14);  // -13.5 rounds to even too
}

TEST_P(QuantPathTest, DequantisationMatchesTheReference) {
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    SCOPED_TRACE(to_string(dtype));
    const std::int64_t cols = 32 * 5;
    const QuantWeight qw(dtype, 3, cols, 9);
    std::vector<float> got(static_cast<std::size_t>(cols)), ref(got.size());
    for (std::int64_t r = 0; r < 3; ++r) {
      simd::quant_kernels(dtype, GetParam()).to_f32(got.data(), qw.w.row(r), cols);
      quant::dequantize_row(dtype, qw.w.row(r), ref.data(), cols);
      for (std::int64_t k = 0; k < cols; ++k) {
        const auto i = static_cast<std::size_t>(k);
        if (dtype != DType::kQ4_1) {
          ASSERT_EQ(got[i], ref[i]) << k;  // d * q is exact in float (11 x 8 bits): the same everywhere
        } else {
          // d q + m: fused (one rounding) or not (two), so within 2 u (|d q| + |m|) of the exact value.
          quant::BlockQ4_1 b;
          std::memcpy(&b, static_cast<const unsigned char*>(qw.w.row(r)) + (k / 32) * sizeof b, sizeof b);
          const std::int64_t j = k % 32;
          const int q = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
          const double dq = static_cast<double>(f16_to_float(b.d)) * q, m = f16_to_float(b.m);
          ASSERT_LE(std::fabs(got[i] - (dq + m)), 2 * kU * (std::fabs(dq) + std::fabs(m))) << k;
        }
      }
    }
  }
}

// The quantities of the tolerance of one output (see the file comment), from the stored quants and the scalar
// reference's activation quanta.
struct Bounds {
  double terms = 0;       // T = sum over blocks of |dw d| sum |qw qa| + |o_b|
  double activation = 0;  // sum_k |w_k| (d_b / 2 + 3 u |x_k|) + u |w_k x_k| (the reference's float dequantisation)
};
Bounds bounds_of(const WeightMatrix& w, std::int64_t r, const float* x, const ActParts& a) {
  Bounds b;
  std::vector<double> wr(static_cast<std::size_t>(w.cols));
  ref::weight_row(wr.data(), w, r);
  const auto* row = static_cast<const unsigned char*>(w.row(r));
  const std::size_t bb = dtype_block_bytes(w.dtype);
  for (std::int64_t blk = 0; blk < w.cols / 32; ++blk) {
    const unsigned char* p = row + static_cast<std::size_t>(blk) * bb;
    std::uint16_t d16 = 0, m16 = 0;
    std::memcpy(&d16, p, 2);
    const double dw = f16_to_float(d16), da = a.d[static_cast<std::size_t>(blk)];
    double c = 0;  // the offset factor c_b
    if (w.dtype == DType::kQ4_0) c = -8 * dw;
    if (w.dtype == DType::kQ4_1) {
      std::memcpy(&m16, p + 2, 2);
      c = f16_to_float(m16);
    }
    std::int64_t dot = 0;  // sum of |qw qa|: the SIMD paths round partial sums of any sign
    for (std::int64_t j = 0; j < 32; ++j) {
      const auto k = static_cast<std::size_t>(blk * 32 + j);
      int qw = 0;
      if (w.dtype == DType::kQ8_0) {
        qw = static_cast<std::int8_t>(p[2 + j]);
      } else {
        const unsigned char* qs = p + (w.dtype == DType::kQ4_0 ? 2 : 4);
        qw = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
      }
      dot += std::abs(qw * a.qs[k]);
      b.activation += std::fabs(wr[k]) * (da / 2 + 4 * kU * std::fabs(x[k]));
    }
    b.terms += std::fabs(dw * da * static_cast<double>(dot)) + std::fabs(c * a.sum[static_cast<std::size_t>(blk)]);
  }
  return b;
}

TEST_P(QuantPathTest, DecodeProductsMatchTheScalarKernelAndTheDoubleReference) {
  ComputeOptions scalar = options_;
  scalar.simd = SimdPath::kScalar;
  std::uint64_t seed = 100;
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    double worst_path = 0, worst_ref = 0;
    for (std::int64_t cols : {32, 96, 576}) {  // 1, 3 and 18 blocks: odd counts exercise the 256-bit tail
      for (std::int64_t rows : {1, 5, 37}) {
        for (std::int64_t n = 1; n <= kGemvMaxRows; n += 3) {
          SCOPED_TRACE(testing::Message() << to_string(dtype) << " cols=" << cols << " rows=" << rows << " n=" << n);
          const QuantWeight qw(dtype, rows, cols, ++seed, cols % 64 == 0 ? 0 : 3);
          const auto x = random_floats(n * cols, ++seed);
          const std::int64_t ldo = rows + 2;
          std::vector<float> got(static_cast<std::size_t>(n * ldo), -7.0f), want(got.size(), -7.0f);
          weight_matmul(got.data(), ldo, x.data(), n, qw.w, options_);
          weight_matmul(want.data(), ldo, x.data(), n, qw.w, scalar);
          const std::vector<double> xd(x.begin(), x.end());
          std::vector<double> ref(static_cast<std::size_t>(n * rows));
          ref::weight_matmul(ref.data(), xd.data(), n, qw.w);
          const double nblk = static_cast<double>(cols / 32);
          for (std::int64_t i = 0; i < n; ++i) {
            const ActParts a = quantized(x.data() + i * cols, cols, SimdPath::kScalar);
            for (std::int64_t r = 0; r < rows; ++r) {
              const Bounds b = bounds_of(qw.w, r, x.data() + i * cols, a);
              const double fp = (2 * nblk + 8) * kU * b.terms + 1e-30;
              const auto o = static_cast<std::size_t>(i * ldo + r);
              const double e_path = std::fabs(static_cast<double>(got[o]) - want[o]);
              ASSERT_LE(e_path, 2 * fp) << "row " << i << " col " << r;
              const double e_ref =
                  std::fabs(static_cast<double>(want[o]) - ref[static_cast<std::size_t>(i * rows + r)]);
              ASSERT_LE(e_ref, b.activation + fp) << "row " << i << " col " << r;
              worst_path = std::max(worst_path, e_path / (2 * fp));
              worst_ref = std::max(worst_ref, e_ref / (b.activation + fp));
            }
            for (std::int64_t r = rows; r < ldo; ++r) ASSERT_EQ(got[static_cast<std::size_t>(i * ldo + r)], -7.0f);
          }
        }
      }
    }
    std::printf("%s %s: worst error / bound: %.3g (against scalar), %.3g (against double)\n", to_string(GetParam()),
                to_string(dtype), worst_path, worst_ref);
  }
}

// The unpacked route (every block type, and the K-quants' only one) and the prefill tiles: fp32 products of
// the exactly dequantised weights, within the fp32 accumulation bound (cols + 2) u S, S = sum |x_k| |w_k|.
TEST_P(QuantPathTest, UnpackedAndTiledProductsMatchTheDoubleReference) {
  std::uint64_t seed = 500;
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    SCOPED_TRACE(to_string(dtype));
    const std::int64_t cols = dtype_block_elements(dtype) == 256 ? 512 : 96;
    for (std::int64_t n : {std::int64_t{1}, std::int64_t{3}, kGemvMaxRows + 1, std::int64_t{40}}) {
      const std::int64_t rows = 19;
      const QuantWeight qw(dtype, rows, cols, ++seed, 5);
      const auto x = random_floats(n * cols, ++seed);
      std::vector<float> got(static_cast<std::size_t>(n * rows));
      if (n <= kGemvMaxRows && dtype_block_elements(dtype) == 32) {
        // The unpacked kernel itself (the K-quants' entry, reached through weight_matmul below), on all rows.
        const WeightTypeKernels* k = unpacked_weight_kernels(dtype);
        ASSERT_NE(k, nullptr);
        k->gemv(got.data(), rows, x.data(), n, qw.w, 0, rows, GetParam());
      } else {
        weight_matmul(got.data(), rows, x.data(), n, qw.w, options_);  // tiles + sgemm, or the K-quants' gemv
      }
      const std::vector<double> xd(x.begin(), x.end());
      std::vector<double> ref(got.size()), wr(static_cast<std::size_t>(cols));
      ref::weight_matmul(ref.data(), xd.data(), n, qw.w);
      for (std::int64_t r = 0; r < rows; ++r) {
        ref::weight_row(wr.data(), qw.w, r);
        for (std::int64_t i = 0; i < n; ++i) {
          double s = 0;
          for (std::int64_t k = 0; k < cols; ++k)
            s += std::fabs(xd[static_cast<std::size_t>(i * cols + k)] * wr[static_cast<std::size_t>(k)]);
          const auto o = static_cast<std::size_t>(i * rows + r);
          // The reference's weights are the float dequantisation, the same values the kernels multiply.
          ASSERT_LE(std::fabs(got[o] - ref[o]), static_cast<double>(cols + 2) * kU * s + 1e-30)
              << "n=" << n << " row " << i << " col " << r;
        }
      }
    }
  }
}

// The repacked layouts (util/dtype.hpp): a row repacked dequantises to the same floats, and its products equal
// the ggml row's: bit for bit on the scalar path (the same integer dots, scale products and sums, in the same
// order), within the cross-path bound above on the SIMD paths. Block counts 1 to 11 exercise every remainder
// (quads, a last pair, a last single block) and windows of 8 and 16 blocks; 37 blocks cross several windows.
TEST_P(QuantPathTest, RepackedRowsEqualTheirGgmlRows) {
  ComputeOptions scalar = options_;
  scalar.simd = SimdPath::kScalar;
  std::uint64_t seed = 900;
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    const DType rdt = quant::repacked_dtype(dtype);
    for (std::int64_t blocks : {1, 2, 3, 4, 5, 6, 7, 9, 11, 18, 37}) {
      const std::int64_t cols = 32 * blocks, rows = 7;
      SCOPED_TRACE(testing::Message() << to_string(dtype) << " blocks=" << blocks);
      const QuantWeight qw(dtype, rows, cols, ++seed);
      std::vector<unsigned char> rbytes(qw.w.row_bytes * rows);
      for (std::int64_t r = 0; r < rows; ++r)
        quant::repack_row(dtype, qw.w.row(r), rbytes.data() + qw.w.row_bytes * r, cols);
      const WeightMatrix rw{rdt, rbytes.data(), rows, cols, qw.w.row_bytes};
      std::vector<float> a(static_cast<std::size_t>(cols)), b(a.size());
      std::vector<float> simd_rows(a.size());
      for (std::int64_t r = 0; r < rows; ++r) {
        quant::dequantize_row(dtype, qw.w.row(r), a.data(), cols);
        quant::dequantize_row(rdt, rw.row(r), b.data(), cols);
        ASSERT_EQ(a, b) << "row " << r;
        // The SIMD dequantisation (prefill tiles): as the ggml row's (DequantisationMatchesTheReference).
        simd::quant_kernels(rdt, GetParam()).to_f32(simd_rows.data(), rw.row(r), cols);
        std::vector<float> ggml_simd(a.size());
        simd::quant_kernels(dtype, GetParam()).to_f32(ggml_simd.data(), qw.w.row(r), cols);
        ASSERT_EQ(simd_rows, ggml_simd) << "row " << r;
      }
      for (std::int64_t n : {std::int64_t{1}, std::int64_t{3}, std::int64_t{5}}) {
        const auto x = random_floats(n * cols, ++seed);
        std::vector<float> ggml(static_cast<std::size_t>(n * rows)), want(ggml.size()), got(ggml.size());
        weight_matmul(ggml.data(), rows, x.data(), n, qw.w, scalar);
        weight_matmul(want.data(), rows, x.data(), n, rw, scalar);
        weight_matmul(got.data(), rows, x.data(), n, rw, options_);
        ASSERT_EQ(want, ggml) << "n=" << n;
        for (std::int64_t i = 0; i < n; ++i) {
          const ActParts ap = quantized(x.data() + i * cols, cols, SimdPath::kScalar);
          for (std::int64_t r = 0; r < rows; ++r) {
            const Bounds bd = bounds_of(qw.w, r, x.data() + i * cols, ap);
            const double fp = (2 * static_cast<double>(blocks) + 8) * kU * bd.terms + 1e-30;
            const auto o = static_cast<std::size_t>(i * rows + r);
            ASSERT_LE(std::fabs(static_cast<double>(got[o]) - want[o]), 2 * fp)
                << "n=" << n << " row " << i << " col " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, QuantPathTest, ::testing::Values(SimdPath::kScalar, SimdPath::kAvx2, SimdPath::kAvx512),
                         test::path_name);

TEST(QuantKernels, RefuseOtherTypes) {
  EXPECT_THROW(simd::quant_kernels(DType::kQ4_K, SimdPath::kScalar), Error);
  EXPECT_THROW(simd::quant_kernels(DType::kF32, SimdPath::kScalar), Error);
  EXPECT_EQ(unpacked_weight_kernels(DType::kF32), nullptr);
}

}  // namespace
}  // namespace zebra
