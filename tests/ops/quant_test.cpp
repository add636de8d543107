// The scalar reference of the block-quantized formats: hand-built blocks dequantised against values
// computed here from the documented layout, and quantize -> dequantize error bounds derived from each
// block's scale.
#include "zebra/ops/quant/quant.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "zebra/ops/quant/blocks.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::quant {
namespace {

std::vector<float> random_row(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<std::uint8_t> q(dtype_row_bytes(t, n));
  quantize_row(t, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), n);
  return y;
}

float f16_round(float v) { return f16_to_float(float_to_f16(v)); }

// Error terms shared by the bounds below. The quantizer computes q from fl(x * fl(1/d)): two float
// roundings, each 2^-24 relative, move x/d by at most 2^-23 |x/d| <= 2^-23 * 16 (Q4) or 2^-23 * 127 (Q8)
// quantisation steps, so a value near a rounding tie may go to either neighbour: |x - d q| <= d/2 + that.
// Dequantisation multiplies (and adds) in float: 2^-24 relative to the result, twice for Q4_1.
// kSlack covers both with margin: 2^-20 of (the block's magnitude + d).
constexpr double kSlack = 0x1p-20;

// Q8_0: d = absmax / 127, q = round(x / d) in [-127, 127], stored d16 = f16(d). Then
//   |x - d16 q| <= |x - d q| + |q| |d - d16| <= d/2 + 127 |d - d16|   (+ kSlack).
TEST(Quant, Q8_0RoundTripWithinHalfStep) {
  for (std::int64_t blocks : {1, 3, 7}) {
    std::vector<float> x = random_row(32 * blocks, 10 + static_cast<std::uint64_t>(blocks), 3.0);
    x[5] = 40.0f;  // an outlier in block 0 widens its step
    for (int i = 64; i < 96 && blocks == 7; ++i) x[static_cast<std::size_t>(i)] = 0.0f;  // an all-zero block
    const std::vector<float> y = round_trip(DType::kQ8_0, x);
    for (std::int64_t b = 0; b < blocks; ++b) {
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[static_cast<std::size_t>(32 * b + i)]));
      const double d = amax / 127.0f, d16 = f16_round(amax / 127.0f);
      const double bound = d / 2 + 127 * std::fabs(d - d16) + kSlack * (amax + d);
      for (int i = 0; i < 32; ++i) {
        const auto k = static_cast<std::size_t>(32 * b + i);
        EXPECT_LE(std::fabs(double{x[k]} - y[k]), bound) << "block " << b << " element " << i << " x " << x[k];
      }
    }
  }
}

// absmax 127 gives d = 1 exactly: integers come back exactly and halves round away from zero (roundf).
TEST(Quant, Q8_0RoundsHalfAwayFromZero) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = -127.0f;
  x[2] = 2.5f;
  x[3] = -2.5f;
  x[4] = 0.49f;
  x[5] = -13.0f;
  const std::vector<float> y = round_trip(DType::kQ8_0, x);
  EXPECT_EQ(y[0], 127.0f);
  EXPECT_EQ(y[1], -127.0f);
  EXPECT_EQ(y[2], 3.0f);
  EXPECT_EQ(y[3], -3.0f);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[5], -13.0f);
}

// Q4_0: d = m / -8 with m the signed value of largest magnitude, so x / d lies in [-8, 8] and
// q = min(15, floor(x/d + 8.5)). Unclamped (x/d + 8.5 < 16): |x - d (q - 8)| <= |d|/2; clamped
// (x/d in [7.5, 8]: only values of the sign opposite to m, near |m|): the error is at most |d|.
// Storing d16: |q - 8| <= 8 adds 8 |d - d16|.
TEST(Quant, Q4_0RoundTripWithinBound) {
  for (std::int64_t blocks : {1, 5}) {
    std::vector<float> x = random_row(32 * blocks, 20 + static_cast<std::uint64_t>(blocks));
    const std::vector<float> y = round_trip(DType::kQ4_0, x);
    for (std::int64_t b = 0; b < blocks; ++b) {
      float amax = 0.0f, m = 0.0f;
      for (int i = 0; i < 32; ++i) {
        const float v = x[static_cast<std::size_t>(32 * b + i)];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          m = v;
        }
      }
      const double d = m / -8.0f, d16 = f16_round(m / -8.0f);
      for (int i = 0; i < 32; ++i) {
        const auto k = static_cast<std::size_t>(32 * b + i);
        const bool clamped = x[k] / d + 8.5 >= 16.0 - 1e-4;
        const double bound =
            (clamped ? 1.0 : 0.5) * std::fabs(d) + 8 * std::fabs(d - d16) + kSlack * (amax + std::fabs(d));
        EXPECT_LE(std::fabs(double{x[k]} - y[k]), bound) << "block " << b << " element " << i;
      }
    }
  }
}

// m = -8 gives d = 1 exactly: integers in [-8, 7] are exact, +8 clamps to 7, halves round up.
TEST(Quant, Q4_0SignedMaxAndClamp) {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;
  x[1] = 7.0f;
  x[2] = 8.0f;  // same magnitude as x[0], later: m stays -8
  x[3] = -3.0f;
  x[4] = 2.5f;   // 2.5 + 8.5 = 11 -> q 11 -> 3
  x[5] = -2.5f;  // 6 -> -2
  const std::vector<float> y = round_trip(DType::kQ4_0, x);
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[1], 7.0f);
  EXPECT_EQ(y[2], 7.0f);
  EXPECT_EQ(y[3], -3.0f);
  EXPECT_EQ(y[4], 3.0f);
  EXPECT_EQ(y[5], -2.0f);
  EXPECT_EQ(y[6], 0.0f);
}

// Q4_1: d = (max - min) / 15, m = min, q = min(15, floor((x - min)/d + 0.5)) in [0, 15]: |x - (d q + m)|
// <= d/2, plus 15 |d - d16| + |m - m16| for the f16 storage of both scales.
TEST(Quant, Q4_1RoundTripWithinBound) {
  for (std::int64_t blocks : {1, 3}) {
    std::vector<float> x = random_row(32 * blocks, 30 + static_cast<std::uint64_t>(blocks), 0.7);
    for (float& v : x) v += 0.3f;  // off-centre, so that m matters
    const std::vector<float> y = round_trip(DType::kQ4_1, x);
    for (std::int64_t b = 0; b < blocks; ++b) {
      float lo = x[static_cast<std::size_t>(32 * b)], hi = lo;
      for (int i = 0; i < 32; ++i) {
        lo = std::min(lo, x[static_cast<std::size_t>(32 * b + i)]);
        hi = std::max(hi, x[static_cast<std::size_t>(32 * b + i)]);
      }
      const double d = (hi - lo) / 15.0f, d16 = f16_round((hi - lo) / 15.0f);
      const double bound = d / 2 + 15 * std::fabs(d - d16) + std::fabs(lo - f16_round(lo)) +
                           kSlack * (std::fabs(lo) + std::fabs(hi) + d);
      for (int i = 0; i < 32; ++i) {
        const auto k = static_cast<std::size_t>(32 * b + i);
        EXPECT_LE(std::fabs(double{x[k]} - y[k]), bound) << "block " << b << " element " << i;
      }
    }
  }
}

TEST(Quant, Q4_1ExactOnItsGrid) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i)
    x[static_cast<std::size_t>(i)] = static_cast<float>(i % 16) - 4.0f;  // min -4, max 11: d 1
  x[3] = 0.5f;  // (0.5 + 4) + 0.5 = 5 -> q 5 -> 1: halves round up
  const std::vector<float> y = round_trip(DType::kQ4_1, x);
  for (int i = 0; i < 32; ++i) {
    const float want = i == 3 ? 1.0f : x[static_cast<std::size_t>(i)];
    EXPECT_EQ(y[static_cast<std::size_t>(i)], want) << i;
  }
}

// --- K-quants: blocks packed here from the layout of blocks.hpp, written out independently of the
// dequantiser (by value index), with small integers and power-of-two scales so every product is exact.

// Packs 6-bit scales and mins of 8 sub-blocks into the 12 bytes of Q4_K / Q5_K.
void pack_scales(const int sc[8], const int mn[8], std::uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<std::uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<std::uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

constexpr int kSc[8] = {1, 2, 63, 17, 33, 48, 5, 60};  // > 15 in slots 4..7 exercises the split high bits
constexpr int kMn[8] = {0, 3, 62, 31, 40, 1, 63, 16};

TEST(Quant, Q4_KHandBuiltBlocks) {
  std::vector<BlockQ4_K> blocks(2);
  std::vector<float> want(512);
  for (int b = 0; b < 2; ++b) {
    BlockQ4_K& blk = blocks[static_cast<std::size_t>(b)];
    std::memset(&blk, 0, sizeof blk);
    const float d = b == 0 ? 0.5f : 0.25f, dmin = b == 0 ? 0.25f : 2.0f;
    blk.d = float_to_f16(d);
    blk.dmin = float_to_f16(dmin);
    pack_scales(kSc, kMn, blk.scales);
    for (int i = 0; i < 256; ++i) {
      const int q = (i * 7 + 3 + b) % 16;
      const int chunk = i / 64, l = i % 32, high = (i % 64) / 32;
      blk.qs[32 * chunk + l] |= static_cast<std::uint8_t>(high ? q << 4 : q);
      want[static_cast<std::size_t>(256 * b + i)] =
          d * static_cast<float>(kSc[i / 32] * q) - dmin * static_cast<float>(kMn[i / 32]);
    }
  }
  std::vector<float> got(512);
  dequantize_row(DType::kQ4_K, blocks.data(), got.data(), 512);
  for (int i = 0; i < 512; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(i)]) << i;
}

TEST(Quant, Q5_KHandBuiltBlocks) {
  BlockQ5_K blk;
  std::memset(&blk, 0, sizeof blk);
  const float d = 0.125f, dmin = 0.5f;
  blk.d = float_to_f16(d);
  blk.dmin = float_to_f16(dmin);
  pack_scales(kSc, kMn, blk.scales);
  std::vector<float> want(256);
  for (int i = 0; i < 256; ++i) {
    const int q = (i * 11 + 5) % 32;
    const int chunk = i / 64, l = i % 32, high = (i % 64) / 32;
    blk.qs[32 * chunk + l] |= static_cast<std::uint8_t>(high ? (q & 15) << 4 : (q & 15));
    if (q >= 16) blk.qh[l] |= static_cast<std::uint8_t>(1u << (2 * chunk + high));
    want[static_cast<std::size_t>(i)] =
        d * static_cast<float>(kSc[i / 32] * q) - dmin * static_cast<float>(kMn[i / 32]);
  }
  std::vector<float> got(256);
  dequantize_row(DType::kQ5_K, &blk, got.data(), 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(i)]) << i;
}

TEST(Quant, Q6_KHandBuiltBlock) {
  BlockQ6_K blk;
  std::memset(&blk, 0, sizeof blk);
  const float d = 0.0625f;
  blk.d = float_to_f16(d);
  for (int s = 0; s < 16; ++s) blk.scales[s] = static_cast<std::int8_t>((s * 37) % 256 - 128);
  std::vector<float> want(256);
  for (int i = 0; i < 256; ++i) {
    const int q = (i * 13 + 7) % 64;
    const int h = i / 128, k = (i % 128) / 32, l = i % 32;
    blk.ql[64 * h + l + 32 * (k & 1)] |= static_cast<std::uint8_t>(k < 2 ? (q & 15) : (q & 15) << 4);
    blk.qh[32 * h + l] |= static_cast<std::uint8_t>((q >> 4) << (2 * k));
    want[static_cast<std::size_t>(i)] = d * static_cast<float>(blk.scales[i / 16] * (q - 32));
  }
  std::vector<float> got(256);
  dequantize_row(DType::kQ6_K, &blk, got.data(), 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(i)]) << i;
}

// blocks.hpp static_asserts the ggml sizes; util/dtype.hpp states them for everyone else: they must agree.
TEST(Quant, BlockStructsMatchDtypeSizes) {
  EXPECT_EQ(sizeof(BlockQ8_0), dtype_block_bytes(DType::kQ8_0));
  EXPECT_EQ(sizeof(BlockQ4_0), dtype_block_bytes(DType::kQ4_0));
  EXPECT_EQ(sizeof(BlockQ4_1), dtype_block_bytes(DType::kQ4_1));
  EXPECT_EQ(sizeof(BlockQ4_K), dtype_block_bytes(DType::kQ4_K));
  EXPECT_EQ(sizeof(BlockQ5_K), dtype_block_bytes(DType::kQ5_K));
  EXPECT_EQ(sizeof(BlockQ6_K), dtype_block_bytes(DType::kQ6_K));
  EXPECT_EQ(kQK, dtype_block_elements(DType::kQ4_1));
  EXPECT_EQ(kQK_K, dtype_block_elements(DType::kQ6_K));
}

// Rows come straight from mapped files: a source at an odd address must read the same.
TEST(Quant, UnalignedSourceReadsTheSame) {
  const std::vector<float> x = random_row(96, 5);
  std::vector<std::uint8_t> q(dtype_row_bytes(DType::kQ8_0, 96) + 1);
  quantize_row(DType::kQ8_0, x.data(), q.data() + 1, 96);
  std::vector<std::uint8_t> aligned(q.begin() + 1, q.end());
  std::vector<float> a(96), b(96);
  dequantize_row(DType::kQ8_0, q.data() + 1, a.data(), 96);
  dequantize_row(DType::kQ8_0, aligned.data(), b.data(), 96);
  EXPECT_EQ(a, b);
}

TEST(Quant, FloatTypes) {
  const std::uint16_t f16[3] = {0x3c00, 0xc000, 0x3555};   // 1, -2, 0.333251953125
  const std::uint16_t bf16[3] = {0x3f80, 0xc040, 0x3eab};  // 1, -3, 0.333984375
  float out[3];
  dequantize_row(DType::kF16, f16, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 0.333251953125f);
  dequantize_row(DType::kBF16, bf16, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
  EXPECT_EQ(out[2], 0.333984375f);
  const float x[3] = {1.5f, -0.1f, 7.0f};
  std::uint16_t h[3];
  quantize_row(DType::kF16, x, h, 3);
  EXPECT_EQ(h[0], float_to_f16(1.5f));
  EXPECT_EQ(h[1], float_to_f16(-0.1f));
  quantize_row(DType::kBF16, x, h, 3);
  EXPECT_EQ(h[2], float_to_bf16(7.0f));
  dequantize_row(DType::kF32, x, out, 3);
  EXPECT_EQ(out[1], -0.1f);
}

TEST(Quant, RefusesBadRowsAndValues) {
  std::vector<float> x(64, 1.0f);
  std::vector<std::uint8_t> q(1024);
  EXPECT_THROW(quantize_row(DType::kQ8_0, x.data(), q.data(), 33), Error);  // not whole blocks
  EXPECT_THROW(dequantize_row(DType::kQ4_K, q.data(), x.data(), 32), Error);
  EXPECT_THROW(quantize_row(DType::kQ4_K, x.data(), q.data(), 0), Error);  // no K quantizer, even for an empty row
  x[7] = std::nanf("");
  EXPECT_THROW(quantize_row(DType::kQ4_0, x.data(), q.data(), 64), Error);
  x[7] = 1e30f;  // finite, but its Q8_0 scale overflows f16
  EXPECT_THROW(quantize_row(DType::kQ8_0, x.data(), q.data(), 64), Error);
}

}  // namespace
}  // namespace zebra::quant
