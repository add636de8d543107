// The ggml block-quantized formats as byte-exact structs (ggml-common.h layouts; all fields are
// little-endian, f16 scales stored as raw uint16_t bits). A row of n values is n / block_elements
// consecutive blocks. The sizes are checked against util/dtype.hpp, which owns the per-type figures.
//
// What each block means (q are the stored integers, d / dmin / m the f16 scales):
//   Q8_0  x[i] = d * qs[i]                                   qs: int8
//   Q4_0  x[i] = d * (q[i] - 8)                              q[i] = qs[i] & 15, q[i + 16] = qs[i] >> 4
//   Q4_1  x[i] = d * q[i] + m                                q packed as in Q4_0
//   Q4_K  256 values in 8 sub-blocks of 32; sub-block j has a 6-bit scale sc[j] and a 6-bit min mn[j]
//         packed into 12 bytes (see k_scale_min); x = d * sc[j] * q - dmin * mn[j], q 4 bits:
//         values 64c + l (l < 32) and 64c + 32 + l are the low and high nibble of qs[32c + l].
//   Q5_K  as Q4_K with a fifth bit per value: bit (2c) of qh[l] for value 64c + l, bit (2c + 1) for 64c + 32 + l.
//   Q6_K  256 values in 16 sub-blocks of 16 with int8 scales; x = d * scales[i / 16] * (q - 32), q 6 bits:
//         for value i = 128h + 32k + l (k < 4, l < 32): low 4 bits in ql[64h + l + 32 (k & 1)]
//         (low nibble for k < 2, high for k >= 2), high 2 bits at bit 2k of qh[32h + l].
#pragma once

#include <cstdint>

#include "zebra/util/dtype.hpp"

namespace zebra::quant {

inline constexpr std::int64_t kQK = 32;     // values per block of the *_0 / *_1 formats
inline constexpr std::int64_t kQK_K = 256;  // values per super-block of the K-quants
inline constexpr int kKScaleBytes = 12;     // packed 6-bit scales and mins of Q4_K / Q5_K

struct BlockQ8_0 {
  std::uint16_t d;
  std::int8_t qs[kQK];
};

struct BlockQ4_0 {
  std::uint16_t d;
  std::uint8_t qs[kQK / 2];
};

struct BlockQ4_1 {
  std::uint16_t d;
  std::uint16_t m;
  std::uint8_t qs[kQK / 2];
};

struct BlockQ4_K {
  std::uint16_t d;     // scale of the sub-block scales
  std::uint16_t dmin;  // scale of the sub-block mins
  std::uint8_t scales[kKScaleBytes];
  std::uint8_t qs[kQK_K / 2];
};

struct BlockQ5_K {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[kKScaleBytes];
  std::uint8_t qh[kQK_K / 8];
  std::uint8_t qs[kQK_K / 2];
};

struct BlockQ6_K {
  std::uint8_t ql[kQK_K / 2];
  std::uint8_t qh[kQK_K / 4];
  std::int8_t scales[kQK_K / 16];
  std::uint16_t d;
};

// Sub-block j (< 8) of the 12 packed bytes of Q4_K / Q5_K: scales 0..3 and mins 0..3 are the low 6 bits
// of bytes 0..3 and 4..7; scale / min 4..7 take their low 4 bits from byte 8 + (j - 4) (low / high
// nibble) and their top 2 bits from the spare top bits of bytes j - 4 / j.
inline void k_scale_min(int j, const std::uint8_t* s, std::uint8_t* scale, std::uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = static_cast<std::uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *min = static_cast<std::uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// The structs are read straight out of (possibly unaligned) file bytes by memcpy, so only their
// sizes matter: no padding may creep in.
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

template <typename Block>
constexpr DType block_dtype();
template <>
constexpr DType block_dtype<BlockQ8_0>() {
  return DType::kQ8_0;
}
template <>
constexpr DType block_dtype<BlockQ4_0>() {
  return DType::kQ4_0;
}
template <>
constexpr DType block_dtype<BlockQ4_1>() {
  return DType::kQ4_1;
}
template <>
constexpr DType block_dtype<BlockQ4_K>() {
  return DType::kQ4_K;
}
template <>
constexpr DType block_dtype<BlockQ5_K>() {
  return DType::kQ5_K;
}
template <>
constexpr DType block_dtype<BlockQ6_K>() {
  return DType::kQ6_K;
}

}  // namespace zebra::quant
