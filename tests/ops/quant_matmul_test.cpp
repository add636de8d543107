// Products with block-quantized weights (ops/weight_kernels.cpp entries over ops/quant/): every block type,
// the matrix-vector path (n <= kGemvMaxRows) and the tile + sgemm path, against a double product of the
// dequantised rows.
//
// The kernels dequantise a row exactly as quant::dequantize_row does (same float arithmetic), so the only
// difference from the double reference is fp32 accumulation: |error| <= (cols + 2) 2^-24 sum_k |x_k| |w_k|
// (cols multiply-adds, each rounding once, plus the final rounding). A wrong block layout, scale or nibble
// order changes values by whole quantisation steps, far beyond that.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "zebra/ops/quant/blocks.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

// Rows of random blocks: Q8_0/Q4_0/Q4_1 quantised from N(0, 1) values; the K-quants as random bytes whose f16
// super-block scales are set to modest values (random bits there would give infinities).
std::vector<std::uint8_t> random_rows(DType dt, std::int64_t rows, std::int64_t cols, Rng& rng) {
  const std::size_t rb = dtype_row_bytes(dt, cols);
  std::vector<std::uint8_t> bytes(rb * static_cast<std::size_t>(rows));
  if (dt == DType::kQ8_0 || dt == DType::kQ4_0 || dt == DType::kQ4_1) {
    std::vector<float> x(static_cast<std::size_t>(cols));
    for (std::int64_t r = 0; r < rows; ++r) {
      for (float& v : x) v = static_cast<float>(rng.normal());
      quant::quantize_row(dt, x.data(), bytes.data() + static_cast<std::size_t>(r) * rb, cols);
    }
    return bytes;
  }
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng.below(256));
  const std::size_t bb = dtype_block_bytes(dt);
  for (std::size_t off = 0; off < bytes.size(); off += bb) {
    const std::uint16_t d = float_to_f16(static_cast<float>(0.001 + 0.01 * rng.uniform()));
    const std::uint16_t dmin = float_to_f16(static_cast<float>(0.001 + 0.01 * rng.uniform()));
    if (dt == DType::kQ6_K) {
      std::memcpy(bytes.data() + off + offsetof(quant::BlockQ6_K, d), &d, 2);
    } else {  // Q4_K and Q5_K start with d, dmin
      std::memcpy(bytes.data() + off, &d, 2);
      std::memcpy(bytes.data() + off + 2, &dmin, 2);
    }
  }
  return bytes;
}

class QuantMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmul, EqualsTheDoubleProductOfTheDequantisedRows) {
  const DType dt = GetParam();
  const std::int64_t block = dtype_block_elements(dt);
  Rng rng(42);
  for (std::int64_t cols : {block, 2 * block, 3 * block}) {
    for (std::int64_t rows : {1, 5, 67}) {
      for (std::int64_t n : {std::int64_t{1}, std::int64_t{3}, kGemvMaxRows, kGemvMaxRows + 3}) {
        SCOPED_TRACE(testing::Message() << to_string(dt) << " rows " << rows << " cols " << cols << " n " << n);
        const std::vector<std::uint8_t> bytes = random_rows(dt, rows, cols, rng);
        const WeightMatrix w{dt, bytes.data(), rows, cols, dtype_row_bytes(dt, cols)};
        std::vector<float> x(static_cast<std::size_t>(n * cols));
        for (float& v : x) v = static_cast<float>(rng.normal());
        const std::int64_t ldo = rows + 2;  // a wider output: the extra columns stay untouched
        std::vector<float> out(static_cast<std::size_t>(n * ldo), -7.0f);
        weight_matmul(out.data(), ldo, x.data(), n, w);
        std::vector<float> row(static_cast<std::size_t>(cols));
        for (std::int64_t r = 0; r < rows; ++r) {
          quant::dequantize_row(dt, w.row(r), row.data(), cols);
          for (std::int64_t i = 0; i < n; ++i) {
            double ref = 0.0, mag = 0.0;
            for (std::int64_t c = 0; c < cols; ++c) {
              const double p =
                  static_cast<double>(x[static_cast<std::size_t>(i * cols + c)]) * row[static_cast<std::size_t>(c)];
              ref += p;
              mag += std::abs(p);
            }
            const double tol = static_cast<double>(cols + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
            ASSERT_NEAR(out[static_cast<std::size_t>(i * ldo + r)], ref, tol) << "row " << r << " input " << i;
          }
        }
        for (std::int64_t i = 0; i < n; ++i) {
          for (std::int64_t c = rows; c < ldo; ++c) ASSERT_EQ(out[static_cast<std::size_t>(i * ldo + c)], -7.0f);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmul,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K, DType::kQ5_K,
                                           DType::kQ6_K),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace zebra
