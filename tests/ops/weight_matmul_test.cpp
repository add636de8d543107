// Typed weight products (ops/weight_matmul.hpp) and the 16-bit conversions (ops/convert.hpp) on every SIMD
// path this CPU runs, against the double reference (ops/ref/weight_matmul_ref.hpp).
//
// Tolerances (u = 2^-24, the fp32 unit roundoff; S = sum_k |x_k| |w_k| of one output element):
//  - against the double product of the weights as stored (dequantised exactly): every kernel forms each
//  product
//    x_k w_k in fp32 (exact under FMA, else rounded once: <= u relative) and sums the cols terms in some
//    order (two chains of W lanes, BLAS blocking); a term takes part in at most cols - 1 roundings of partial
//    sums, so |out - ref| <= (cols + 1) u S (to first order). The tests allow (cols + 2) u S.
//  - against the double product of the fp32 weights BEFORE rounding to bf16/f16: storage rounds each weight
//  to
//    nearest, |w_s - w| <= u_s |w| with u_s = 2^-8 (bf16, 8 significant bits) or 2^-11 (f16, 11 bits) while
//    |w| is in f16's normal range; below 2^-14 f16 is subnormal with spacing 2^-24, so there the error is <=
//    2^-25 absolute. Hence |sum_k x_k (w_s,k - w_k)| <= u_s S32 + 2^-25 sum_k |x_k| (S32: S with the
//    unrounded weights), plus the fp32 accumulation above, (cols + 2) u S_s <= (cols + 2) u (1 + u_s) S32.
// Weights that were not converted, a lost tail element, a row read at the wrong stride or a lane counted
// twice move results by far more than these bounds (the first bound is 2^16 (bf16) / 2^13 (f16) times tighter
// than the storage rounding, so it also fails if a kernel used anything but the stored weights).
#include "zebra/ops/weight_matmul.hpp"

#include <gtest/gtest.h>

#include "ops/simd_path_test.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "zebra/ops/convert.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/ref/weight_matmul_ref.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

namespace {

constexpr double kU32 = 0x1.0p-24;

using test::PathTest;
using test::random_floats;

double storage_unit_roundoff(DType d) {
  switch (d) {
    case DType::kBF16: return 0x1.0p-8;
    case DType::kF16: return 0x1.0p-11;
    default: return 0.0;
  }
}

// A weight matrix of dtype stored in owned bytes, rows `pad` elements longer than cols (a strided view).
struct StoredWeight {
  std::vector<unsigned char> bytes;
  WeightMatrix w;
  StoredWeight(DType dtype, const std::vector<float>& w32, std::int64_t rows, std::int64_t cols, std::int64_t pad,
               const ComputeOptions& options) {
    const std::size_t es = dtype_size(dtype), row_bytes = static_cast<std::size_t>(cols + pad) * es;
    bytes.assign(row_bytes * static_cast<std::size_t>(rows) + 1, 0xAB);  // padding filled with garbage
    for (std::int64_t r = 0; r < rows; ++r) {
      convert_from_f32(dtype, bytes.data() + static_cast<std::size_t>(r) * row_bytes, w32.data() + r * cols, cols,
                       options);
    }
    w = WeightMatrix{dtype, bytes.data(), rows, cols, row_bytes};
  }
};

class WeightMatmulTest : public PathTest {};

TEST_P(WeightMatmulTest, MatchesDoubleReferenceOnOddSizes) {
  const std::int64_t ns[] = {1, 3, 17, 64}, colss[] = {1, 7, 33, 576}, rowss[] = {1, 5, 129};
  std::uint64_t seed = 1;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    double worst = 0.0, worst_storage = 0.0;
    for (std::int64_t n : ns) {
      for (std::int64_t cols : colss) {
        for (std::int64_t rows : rowss) {
          SCOPED_TRACE(testing::Message() << to_string(dtype) << " N=" << n << " cols=" << cols << " rows=" << rows);
          const auto x = random_floats(n * cols, ++seed);
          const auto w32 = random_floats(rows * cols, ++seed);
          const std::int64_t pad = cols % 2;  // odd widths: a strided view
          const StoredWeight sw(dtype, w32, rows, cols, pad, options_);
          // Output rows 3 wider than the product: the extra columns must stay untouched.
          const std::int64_t ldo = rows + 3;
          constexpr float kSentinel = -12345.0f;
          std::vector<float> out(static_cast<std::size_t>(n * ldo), kSentinel);
          weight_matmul(out.data(), ldo, x.data(), n, sw.w, options_);

          const std::vector<double> xd(x.begin(), x.end());
          std::vector<double> ref(static_cast<std::size_t>(n * rows)), ref32(ref.size());
          ref::weight_matmul(ref.data(), xd.data(), n, sw.w);
          ref::weight_matmul(ref32.data(), xd.data(), n, WeightMatrix::dense(w32.data(), rows, cols));
          std::vector<double> wrow(static_cast<std::size_t>(cols));
          const double us = storage_unit_roundoff(dtype);
          for (std::int64_t r = 0; r < rows; ++r) {
            ref::weight_row(wrow.data(), sw.w, r);
            for (std::int64_t i = 0; i < n; ++i) {
              double s = 0.0, s32 = 0.0, sx = 0.0;
              for (std::int64_t k = 0; k < cols; ++k) {
                const double xa = std::fabs(xd[static_cast<std::size_t>(i * cols + k)]);
                s += xa * std::fabs(wrow[static_cast<std::size_t>(k)]);
                s32 += xa * std::fabs(static_cast<double>(w32[static_cast<std::size_t>(r * cols + k)]));
                sx += xa;
              }
              const double got = out[static_cast<std::size_t>(i * ldo + r)];
              const double tol = static_cast<double>(cols + 2) * kU32 * s + 1e-300;
              const double err = std::fabs(got - ref[static_cast<std::size_t>(i * rows + r)]);
              ASSERT_LE(err, tol) << "row " << i << " col " << r;
              worst = std::max(worst, err / tol);
              const double tol_storage = us * s32 + (dtype == DType::kF16 ? 0x1.0p-25 * sx : 0.0) +
                                         static_cast<double>(cols + 2) * kU32 * (1.0 + us) * s32 + 1e-300;
              const double err_storage = std::fabs(got - ref32[static_cast<std::size_t>(i * rows + r)]);
              ASSERT_LE(err_storage, tol_storage) << "row " << i << " col " << r;
              worst_storage = std::max(worst_storage, err_storage / tol_storage);
            }
          }
          for (std::int64_t i = 0; i < n; ++i) {
            for (std::int64_t r = rows; r < ldo; ++r) ASSERT_EQ(out[static_cast<std::size_t>(i * ldo + r)], kSentinel);
          }
        }
      }
    }
    std::printf("%s %s: worst error / bound: %.3g (stored weights), %.3g (storage rounding)\n", to_string(GetParam()),
                to_string(dtype), worst, worst_storage);
  }
}

// Q, K and V of separate matrices (different dtypes even) land in column slices of one [N, QKV] buffer and
// equal the products written on their own.
TEST_P(WeightMatmulTest, OutputStrideFillsColumnSlices) {
  const std::int64_t cols = 40, rows_q = 24, rows_kv = 8, qkv = rows_q + 2 * rows_kv;
  for (std::int64_t n : {std::int64_t{2}, std::int64_t{20}}) {
    const auto x = random_floats(n * cols, 7);
    const StoredWeight q(DType::kBF16, random_floats(rows_q * cols, 8), rows_q, cols, 0, options_);
    const StoredWeight k(DType::kF16, random_floats(rows_kv * cols, 9), rows_kv, cols, 0, options_);
    const StoredWeight v(DType::kF32, random_floats(rows_kv * cols, 10), rows_kv, cols, 0, options_);
    std::vector<float> fused(static_cast<std::size_t>(n * qkv));
    weight_matmul(fused.data(), qkv, x.data(), n, q.w, options_);
    weight_matmul(fused.data() + rows_q, qkv, x.data(), n, k.w, options_);
    weight_matmul(fused.data() + rows_q + rows_kv, qkv, x.data(), n, v.w, options_);
    std::int64_t col0 = 0;
    for (const StoredWeight* m : {&q, &k, &v}) {
      std::vector<float> alone(static_cast<std::size_t>(n * m->w.rows));
      weight_matmul(alone.data(), m->w.rows, x.data(), n, m->w, options_);
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t r = 0; r < m->w.rows; ++r) {
          ASSERT_EQ(fused[static_cast<std::size_t>(i * qkv + col0 + r)],
                    alone[static_cast<std::size_t>(i * m->w.rows + r)]);
        }
      }
      col0 += m->w.rows;
    }
  }
}

// F32 weights with options.bf16 on a strided view: the fp32 product of the bf16-rounded inputs (every product
// of two bf16 values is exact in fp32, so only the summation order differs: (cols + 2) u S as above).
TEST_P(WeightMatmulTest, Bf16OptionRoundsStridedF32Weights) {
  const std::int64_t n = 5, rows = 7, cols = 33, pad = 3;
  const auto x = random_floats(n * cols, 13), w32 = random_floats(rows * cols, 14);
  const StoredWeight sw(DType::kF32, w32, rows, cols, pad, options_);
  ComputeOptions bf16 = options_;
  bf16.bf16 = true;
  std::vector<float> out(static_cast<std::size_t>(n * rows));
  weight_matmul(out.data(), rows, x.data(), n, sw.w, bf16);
  std::vector<double> xr(x.size()), wr(w32.size()), ref(out.size());
  for (std::size_t i = 0; i < x.size(); ++i) xr[i] = bf16_to_float(float_to_bf16(x[i]));
  for (std::size_t i = 0; i < w32.size(); ++i) wr[i] = bf16_to_float(float_to_bf16(w32[i]));
  ref::weight_matmul(ref.data(), xr.data(), n, WeightMatrix::dense(wr.data(), rows, cols));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t r = 0; r < rows; ++r) {
      double s = 0.0;
      for (std::int64_t k = 0; k < cols; ++k) {
        s += std::fabs(xr[static_cast<std::size_t>(i * cols + k)] * wr[static_cast<std::size_t>(r * cols + k)]);
      }
      EXPECT_NEAR(out[static_cast<std::size_t>(i * rows + r)], ref[static_cast<std::size_t>(i * rows + r)],
                  static_cast<double>(cols + 2) * kU32 * s);
    }
  }
}

// Both strategies (matrix-vector for N <= kGemvMaxRows, tiles + sgemm above) cut the work by shape only, so
// the results are bit-identical for 1 and 2 threads; the sizes are large enough to run in parallel. Every
// dtype with kernels: the 16-bit ones, the 32-value block formats and their repacked layouts.
TEST_P(WeightMatmulTest, ThreadCountDoesNotChangeResults) {
  const std::int64_t rows = 300, cols = 576;
  const auto w32 = random_floats(rows * cols, 11);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ8_0R, DType::kQ4_0R,
                      DType::kQ4_1R}) {
    const std::size_t rb = dtype_row_bytes(dtype, cols);
    std::vector<unsigned char> bytes(rb * rows);
    for (std::int64_t r = 0; r < rows; ++r)
      quant::quantize_row(dtype, w32.data() + r * cols, bytes.data() + rb * r, cols);
    const WeightMatrix w{dtype, bytes.data(), rows, cols, rb};
    for (std::int64_t n : {std::int64_t{1}, kGemvMaxRows, kGemvMaxRows + 1, std::int64_t{70}}) {
      SCOPED_TRACE(testing::Message() << to_string(dtype) << " N=" << n);
      const auto x = random_floats(n * cols, 12);
      ComputeOptions one = options_, two = options_;
      one.threads = 1;
      two.threads = 2;
      std::vector<float> a(static_cast<std::size_t>(n * rows)), b(a.size());
      weight_matmul(a.data(), rows, x.data(), n, w, one);
      weight_matmul(b.data(), rows, x.data(), n, w, two);
      EXPECT_EQ(a, b);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, WeightMatmulTest,
                         ::testing::Values(SimdPath::kScalar, SimdPath::kAvx2, SimdPath::kAvx512), test::path_name);

// F64 weights (gradient checks): the double BLAS product, against the reference within double accumulation,
// (cols + 2) 2^-53 S.
TEST(WeightMatmul, F64MatchesReference) {
  const std::int64_t n = 5, rows = 9, cols = 33, ldo = 11;
  Rng rng(3);
  std::vector<double> x(static_cast<std::size_t>(n * cols)), w(static_cast<std::size_t>(rows * cols));
  for (double& v : x) v = rng.normal();
  for (double& v : w) v = rng.normal();
  const WeightMatrix wm = WeightMatrix::dense(w.data(), rows, cols);
  std::vector<double> out(static_cast<std::size_t>(n * ldo), 7.0), ref(static_cast<std::size_t>(n * rows));
  weight_matmul(out.data(), ldo, x.data(), n, wm);
  ref::weight_matmul(ref.data(), x.data(), n, wm);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t r = 0; r < rows; ++r) {
      double s = 0.0;
      for (std::int64_t k = 0; k < cols; ++k) {
        s += std::fabs(x[static_cast<std::size_t>(i * cols + k)] * w[static_cast<std::size_t>(r * cols + k)]);
      }
      EXPECT_NEAR(out[static_cast<std::size_t>(i * ldo + r)], ref[static_cast<std::size_t>(i * rows + r)],
                  static_cast<double>(cols + 2) * 0x1.0p-53 * s);
    }
    for (std::int64_t r = rows; r < ldo; ++r) EXPECT_EQ(out[static_cast<std::size_t>(i * ldo + r)], 7.0);
  }
}

// f must throw zebra::Error with a message containing `needle`.
template <typename F>
void expect_error_naming(F&& f, const std::string& needle) {
  std::string message = "(no error)";
  try {
    f();
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find(needle), std::string::npos) << "expected an error naming '" << needle << "', got: " << message;
}

TEST(WeightMatmul, RefusesWhatItCannotCompute) {
  std::vector<double> blocks(2 * 32, 0);
  std::vector<float> x(2 * 32, 1.0f), out(2 * 2);
  // float activations with F64 weights: no kernel, named in the error.
  const WeightMatrix f64{DType::kF64, blocks.data(), 2, 32, 32 * 8};
  expect_error_naming([&] { weight_matmul(out.data(), 2, x.data(), 2, f64); }, "F64");
  // double activations need F64 weights.
  std::vector<std::uint16_t> h(2 * 32, 0);
  std::vector<double> xd(2 * 32, 1.0), outd(2 * 2);
  const WeightMatrix bf{DType::kBF16, h.data(), 2, 32, 64};
  expect_error_naming([&] { weight_matmul(outd.data(), 2, xd.data(), 2, bf); }, "BF16");
  // A row stride shorter than a row, an output stride shorter than the product, missing data.
  const WeightMatrix short_rows{DType::kBF16, h.data(), 2, 32, 62};
  expect_error_naming([&] { weight_matmul(out.data(), 2, x.data(), 2, short_rows); }, "row stride is 62");
  expect_error_naming([&] { weight_matmul(out.data(), 1, x.data(), 2, bf); }, "output row stride 1");
  const WeightMatrix no_data{DType::kF16, nullptr, 2, 32, 64};
  expect_error_naming([&] { weight_matmul(out.data(), 2, x.data(), 2, no_data); }, "no data");
}

TEST(WeightMatmul, ScratchIsBoundedAndOnlyForTiles) {
  const std::vector<std::uint16_t> h(1);
  const WeightMatrix wide{DType::kBF16, h.data(), 4096, 1 << 16, std::size_t{2} << 16};
  EXPECT_EQ(weight_matmul_scratch_bytes(wide, kGemvMaxRows), 0);
  const std::int64_t tile = weight_matmul_scratch_bytes(wide, kGemvMaxRows + 1);
  EXPECT_GT(tile, 0);
  EXPECT_LE(tile, std::int64_t{16} * (1 << 16) * 4);  // at most kTileMinRows rows of fp32 for very wide rows
  const WeightMatrix f32{DType::kF32, h.data(), 10, 10, 40};
  EXPECT_EQ(weight_matmul_scratch_bytes(f32, 100), 0);
}

// ---- conversions ------------------------------------------------------------------------------------------

bool same_or_both_nan(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

class ConvertTest : public PathTest {};

// Widening is exact: every one of the 65536 bit patterns of each type gives util/dtype.hpp's value.
TEST_P(ConvertTest, WideningIsExactForEveryBitPattern) {
  std::vector<std::uint16_t> all(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> got(all.size());
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    convert_to_f32(got.data(), dtype, all.data(), static_cast<std::int64_t>(all.size()), options_);
    for (std::size_t i = 0; i < all.size(); ++i) {
      const float want = dtype == DType::kBF16 ? bf16_to_float(all[i]) : f16_to_float(all[i]);
      ASSERT_TRUE(same_or_both_nan(got[i], want)) << to_string(dtype) << " bits " << i;
    }
  }
}

// Narrowing gives float_to_bf16 / float_to_f16's bits (NaN: any NaN) on random values, ties, the ends of the
// ranges and subnormals, at an odd length (vector tails) and at a length that runs in parallel chunks.
TEST_P(ConvertTest, NarrowingMatchesScalarRounding) {
  std::vector<float> v = random_floats((std::int64_t{1} << 16) + 7, 5, 3.0);
  const float specials[] = {0.0f,
                            -0.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::denorm_min(),
                            1e-40f,
                            1.0f + 0x1.0p-8f,
                            1.0f + 3 * 0x1.0p-8f,
                            1.0f + 0x1.0p-11f,
                            1.0f + 3 * 0x1.0p-11f,
                            65504.0f,
                            65519.0f,
                            65520.0f,
                            70000.0f,
                            0x1.0p-14f,
                            0x1.0p-24f,
                            0x1.0p-25f,
                            0x1.8p-25f,
                            3e-5f,
                            -6e-8f,
                            0x1.fffffep127f};
  for (std::size_t i = 0; i < std::size(specials); ++i) v[i * 37] = specials[i];
  // Random values of every magnitude (exponent bits uniform): overflow, subnormal and tie cases of both
  // types.
  Rng rng(9);
  for (std::size_t i = 2000; i < 12000; ++i) v[i] = std::bit_cast<float>(static_cast<std::uint32_t>(rng.next_u64()));
  for (std::int64_t n : {std::int64_t{1013}, static_cast<std::int64_t>(v.size())}) {
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      std::vector<std::uint16_t> got(static_cast<std::size_t>(n));
      convert_from_f32(dtype, got.data(), v.data(), n, options_);
      for (std::int64_t i = 0; i < n; ++i) {
        const float x = v[static_cast<std::size_t>(i)];
        const std::uint16_t want = dtype == DType::kBF16 ? float_to_bf16(x) : float_to_f16(x);
        const std::uint16_t g = got[static_cast<std::size_t>(i)];
        if (std::isnan(x)) {
          const float back = dtype == DType::kBF16 ? bf16_to_float(g) : f16_to_float(g);
          ASSERT_TRUE(std::isnan(back)) << to_string(dtype) << " at " << i;
        } else {
          ASSERT_EQ(g, want) << to_string(dtype) << " at " << i << " x=" << x;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, ConvertTest, ::testing::Values(SimdPath::kScalar, SimdPath::kAvx2, SimdPath::kAvx512),
                         test::path_name);

TEST(Convert, RefusesOtherTypes) {
  std::vector<float> x(4);
  std::vector<unsigned char> out(64);
  expect_error_naming([&] { convert_from_f32(DType::kQ4_0, out.data(), x.data(), 4); }, "Q4_0");
  expect_error_naming([&] { convert_to_f32(x.data(), DType::kF64, out.data(), 4); }, "F64");
}

}  // namespace
}  // namespace zebra
