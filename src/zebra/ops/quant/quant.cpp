#include "zebra/ops/quant/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "zebra/ops/quant/blocks.hpp"
#include "zebra/util/error.hpp"

namespace zebra::quant {

namespace {

// --- dequantisation, one block ------------------------------------------------------------------

void dequant_block(const BlockQ8_0& b, float* y) {
  const float d = f16_to_float(b.d);
  for (std::int64_t i = 0; i < kQK; ++i) y[i] = d * static_cast<float>(b.qs[i]);
}

void dequant_block(const BlockQ4_0& b, float* y) {
  const float d = f16_to_float(b.d);
  for (std::int64_t i = 0; i < kQK / 2; ++i) {
    y[i] = d * static_cast<float>((b.qs[i] & 0x0f) - 8);
    y[i + kQK / 2] = d * static_cast<float>((b.qs[i] >> 4) - 8);
  }
}

void dequant_block(const BlockQ4_1& b, float* y) {
  const float d = f16_to_float(b.d), m = f16_to_float(b.m);
  for (std::int64_t i = 0; i < kQK / 2; ++i) {
    y[i] = d * static_cast<float>(b.qs[i] & 0x0f) + m;
    y[i + kQK / 2] = d * static_cast<float>(b.qs[i] >> 4) + m;
  }
}

// Q4_K and Q5_K share everything but the fifth bit: qh == nullptr for Q4_K.
void dequant_k4(std::uint16_t d16, std::uint16_t dmin16, const std::uint8_t* scales, const std::uint8_t* qs,
                const std::uint8_t* qh, float* y) {
  const float d = f16_to_float(d16), dmin = f16_to_float(dmin16);
  for (int c = 0; c < 4; ++c) {  // 4 chunks of 64 values: two sub-blocks of 32 share 32 bytes of nibbles
    for (int half = 0; half < 2; ++half) {
      const int j = 2 * c + half;
      std::uint8_t sc = 0, mn = 0;
      k_scale_min(j, scales, &sc, &mn);
      const float scale = d * static_cast<float>(sc), min = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) {
        int q = half == 0 ? (qs[32 * c + l] & 0x0f) : (qs[32 * c + l] >> 4);
        if (qh != nullptr && ((qh[l] >> j) & 1)) q += 16;
        y[32 * j + l] = scale * static_cast<float>(q) - min;
      }
    }
  }
}

void dequant_block(const BlockQ4_K& b, float* y) { dequant_k4(b.d, b.dmin, b.scales, b.qs, nullptr, y); }
void dequant_block(const BlockQ5_K& b, float* y) { dequant_k4(b.d, b.dmin, b.scales, b.qs, b.qh, y); }

void dequant_block(const BlockQ6_K& b, float* y) {
  const float d = f16_to_float(b.d);
  for (int h = 0; h < 2; ++h) {    // two halves of 128 values
    for (int k = 0; k < 4; ++k) {  // four runs of 32 within a half
      for (int l = 0; l < 32; ++l) {
        const std::uint8_t lo = b.ql[64 * h + l + 32 * (k & 1)];
        const int low4 = k < 2 ? (lo & 0x0f) : (lo >> 4);
        const int high2 = (b.qh[32 * h + l] >> (2 * k)) & 3;
        const int i = 128 * h + 32 * k + l;
        y[i] = d * static_cast<float>(b.scales[i / 16]) * static_cast<float>((low4 | (high2 << 4)) - 32);
      }
    }
  }
}

template <typename Block>
void dequant_blocks(const void* src, float* dst, std::int64_t n) {
  const std::int64_t elems = dtype_block_elements(block_dtype<Block>());
  const auto* p = static_cast<const unsigned char*>(src);
  for (std::int64_t b = 0; b < n / elems; ++b) {
    Block blk;
    std::memcpy(&blk, p + static_cast<std::size_t>(b) * sizeof(Block), sizeof(Block));  // unaligned source
    dequant_block(blk, dst + b * elems);
  }
}

// --- quantisation, one block (ggml's reference rounding) ---------------------------------------

std::uint16_t scale_to_f16(float d, DType dtype) {
  const std::uint16_t h = float_to_f16(d);
  ZEBRA_CHECK(std::isfinite(f16_to_float(h)), "quantize_row ", to_string(dtype), ": block scale ", d,
              " overflows f16 (|values| too large for this format)");
  return h;
}

void quant_block(const float* x, BlockQ8_0& b) {
  float amax = 0.0f;
  for (std::int64_t i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = scale_to_f16(d, DType::kQ8_0);
  // |x * id| <= 127 (up to rounding of id, which roundf cannot push past 127.5).
  for (std::int64_t i = 0; i < kQK; ++i) b.qs[i] = static_cast<std::int8_t>(std::roundf(x[i] * id));
}

void quant_block(const float* x, BlockQ4_0& b) {
  float amax = 0.0f, max = 0.0f;  // max: the value of largest magnitude, with its sign
  for (std::int64_t i = 0; i < kQK; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = scale_to_f16(d, DType::kQ4_0);
  // x * id lies in [-8, 8]; + 8.5 then truncation rounds half up into [0, 16], clamped to 15.
  auto q = [&](float v) {
    const float t = std::clamp(v * id + 8.5f, 0.0f, 15.0f);
    return static_cast<std::uint8_t>(t);
  };
  for (std::int64_t i = 0; i < kQK / 2; ++i) {
    b.qs[i] = static_cast<std::uint8_t>(q(x[i]) | (q(x[i + kQK / 2]) << 4));
  }
}

void quant_block(const float* x, BlockQ4_1& b) {
  float min = x[0], max = x[0];
  for (std::int64_t i = 1; i < kQK; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = scale_to_f16(d, DType::kQ4_1);
  b.m = scale_to_f16(min, DType::kQ4_1);
  // (x - min) * id lies in [0, 15]; + 0.5 then truncation rounds half up, clamped to 15.
  auto q = [&](float v) {
    const float t = std::clamp((v - min) * id + 0.5f, 0.0f, 15.0f);
    return static_cast<std::uint8_t>(t);
  };
  for (std::int64_t i = 0; i < kQK / 2; ++i) {
    b.qs[i] = static_cast<std::uint8_t>(q(x[i]) | (q(x[i + kQK / 2]) << 4));
  }
}

template <typename Block>
void quant_blocks(const float* src, void* dst, std::int64_t n) {
  auto* p = static_cast<unsigned char*>(dst);
  for (std::int64_t b = 0; b < n / kQK; ++b) {
    Block blk;
    quant_block(src + b * kQK, blk);
    std::memcpy(p + static_cast<std::size_t>(b) * sizeof(Block), &blk, sizeof(Block));
  }
}

// --- the repacked layouts (util/dtype.hpp) ------------------------------------------------------------------

bool has_min(DType d) { return d == DType::kQ4_1 || d == DType::kQ4_1R; }
std::size_t quant_bytes(DType d) { return d == DType::kQ8_0 || d == DType::kQ8_0R ? 32 : 16; }

// Where the nibble of value v (< n) of a repacked Q4 row sits: byte index into the quants and the shift.
void q4r_place(std::int64_t n_blocks, std::int64_t v, std::size_t* byte, int* shift) {
  const std::int64_t b = v / kQK, quads = n_blocks / 4;
  if (b < 4 * quads) {  // groups of 4 blocks: 64 bytes, byte i = value i | value i + 64
    const std::int64_t g = b / 4, i = v - g * 128;
    *byte = static_cast<std::size_t>(g * 64 + i % 64);
    *shift = i < 64 ? 0 : 4;
    return;
  }
  const std::int64_t rest = n_blocks - 4 * quads, at = 4 * quads;
  if (rest >= 2 && b < at + 2) {  // a last pair: 32 bytes, byte i = value i | value i + 32
    const std::int64_t i = v - at * kQK;
    *byte = static_cast<std::size_t>(quads * 64 + i % 32);
    *shift = i < 32 ? 0 : 4;
    return;
  }
  const std::int64_t single = rest >= 2 ? at + 2 : at;  // a last single block: ggml's 16 bytes
  const std::int64_t i = v - single * kQK;
  *byte = static_cast<std::size_t>(quads * 64 + (rest >= 2 ? 32 : 0) + i % 16);
  *shift = i < 16 ? 0 : 4;
}

// Quants (as stored: int8 for Q8_0, 0..15 for Q4), d, m of a ggml row.
struct RowParts {
  std::vector<int> q;
  std::vector<std::uint16_t> d, m;
};

RowParts parts_of_ggml(DType d, const unsigned char* src, std::int64_t n) {
  RowParts p;
  const std::int64_t nb = n / kQK;
  const std::size_t bb = dtype_block_bytes(d);
  p.q.resize(static_cast<std::size_t>(n));
  p.d.resize(static_cast<std::size_t>(nb));
  p.m.resize(static_cast<std::size_t>(nb));
  for (std::int64_t b = 0; b < nb; ++b) {
    const unsigned char* blk = src + static_cast<std::size_t>(b) * bb;
    std::memcpy(&p.d[static_cast<std::size_t>(b)], blk, 2);
    if (has_min(d)) std::memcpy(&p.m[static_cast<std::size_t>(b)], blk + 2, 2);
    const unsigned char* qs = blk + (has_min(d) ? 4 : 2);
    for (std::int64_t j = 0; j < kQK; ++j) {
      p.q[static_cast<std::size_t>(b * kQK + j)] =
          quant_bytes(d) == 32 ? static_cast<std::int8_t>(qs[j]) : (j < 16 ? qs[j] & 15 : qs[j - 16] >> 4);
    }
  }
  return p;
}

RowParts parts_of_repacked(DType d, const unsigned char* src, std::int64_t n) {
  RowParts p;
  const std::int64_t nb = n / kQK;
  p.q.resize(static_cast<std::size_t>(n));
  p.d.resize(static_cast<std::size_t>(nb));
  p.m.resize(static_cast<std::size_t>(nb));
  const std::size_t qbytes = quant_bytes(d) * static_cast<std::size_t>(nb);
  for (std::int64_t v = 0; v < n; ++v) {
    if (quant_bytes(d) == 32) {
      p.q[static_cast<std::size_t>(v)] = static_cast<std::int8_t>(src[v]);
    } else {
      std::size_t byte = 0;
      int shift = 0;
      q4r_place(nb, v, &byte, &shift);
      p.q[static_cast<std::size_t>(v)] = (src[byte] >> shift) & 15;
    }
  }
  std::memcpy(p.d.data(), src + qbytes, static_cast<std::size_t>(nb) * 2);
  if (has_min(d))
    std::memcpy(p.m.data(), src + qbytes + static_cast<std::size_t>(nb) * 2, static_cast<std::size_t>(nb) * 2);
  return p;
}

void dequant_repacked(DType d, const void* src, float* dst, std::int64_t n) {
  const RowParts p = parts_of_repacked(d, static_cast<const unsigned char*>(src), n);
  for (std::int64_t v = 0; v < n; ++v) {
    const auto b = static_cast<std::size_t>(v / kQK);
    const float scale = f16_to_float(p.d[b]);
    const int q = p.q[static_cast<std::size_t>(v)];
    // The same float operations as the ggml blocks' dequantisation above.
    dst[v] = d == DType::kQ8_0R   ? scale * static_cast<float>(q)
             : d == DType::kQ4_0R ? scale * static_cast<float>(q - 8)
                                  : scale * static_cast<float>(q) + f16_to_float(p.m[b]);
  }
}

}  // namespace

DType repacked_dtype(DType d) {
  switch (d) {
    case DType::kQ8_0: return DType::kQ8_0R;
    case DType::kQ4_0: return DType::kQ4_0R;
    case DType::kQ4_1: return DType::kQ4_1R;
    default: return d;
  }
}

void repack_row(DType from, const void* src, void* dst, std::int64_t n) {
  ZEBRA_CHECK(repacked_dtype(from) != from, "repack_row: ", to_string(from), " has no repacked layout");
  (void)dtype_row_bytes(from, n);
  const std::int64_t nb = n / kQK;
  const RowParts p = parts_of_ggml(from, static_cast<const unsigned char*>(src), n);
  auto* out = static_cast<unsigned char*>(dst);
  const std::size_t qbytes = quant_bytes(from) * static_cast<std::size_t>(nb);
  std::memset(out, 0, qbytes);
  for (std::int64_t v = 0; v < n; ++v) {
    if (quant_bytes(from) == 32) {
      out[v] = static_cast<unsigned char>(static_cast<std::int8_t>(p.q[static_cast<std::size_t>(v)]));
    } else {
      std::size_t byte = 0;
      int shift = 0;
      q4r_place(nb, v, &byte, &shift);
      out[byte] = static_cast<unsigned char>(out[byte] | (p.q[static_cast<std::size_t>(v)] << shift));
    }
  }
  std::memcpy(out + qbytes, p.d.data(), static_cast<std::size_t>(nb) * 2);
  if (has_min(from))
    std::memcpy(out + qbytes + static_cast<std::size_t>(nb) * 2, p.m.data(), static_cast<std::size_t>(nb) * 2);
}

void repacked_parts(DType dtype, const void* src, std::int64_t n, std::int8_t* q, float* d, float* c) {
  ZEBRA_CHECK(dtype == DType::kQ8_0R || dtype == DType::kQ4_0R || dtype == DType::kQ4_1R,
              "repacked_parts: not a repacked dtype: ", to_string(dtype));
  (void)dtype_row_bytes(dtype, n);
  const RowParts p = parts_of_repacked(dtype, static_cast<const unsigned char*>(src), n);
  for (std::int64_t v = 0; v < n; ++v) q[v] = static_cast<std::int8_t>(p.q[static_cast<std::size_t>(v)]);
  for (std::int64_t b = 0; b < n / kQK; ++b) {
    d[b] = f16_to_float(p.d[static_cast<std::size_t>(b)]);
    c[b] = dtype == DType::kQ4_1R   ? f16_to_float(p.m[static_cast<std::size_t>(b)])
           : dtype == DType::kQ4_0R ? -8.0f * d[b]
                                    : 0.0f;
  }
}

void dequantize_row(DType dtype, const void* src, float* dst, std::int64_t n) {
  (void)dtype_row_bytes(dtype, n);  // checks n against the block size
  switch (dtype) {
    case DType::kF32:
    case DType::kF64:
    case DType::kF16:
    case DType::kBF16: return convert_floating(dtype, src, dst, static_cast<std::size_t>(n));
    case DType::kQ8_0: return dequant_blocks<BlockQ8_0>(src, dst, n);
    case DType::kQ4_0: return dequant_blocks<BlockQ4_0>(src, dst, n);
    case DType::kQ4_1: return dequant_blocks<BlockQ4_1>(src, dst, n);
    case DType::kQ4_K: return dequant_blocks<BlockQ4_K>(src, dst, n);
    case DType::kQ5_K: return dequant_blocks<BlockQ5_K>(src, dst, n);
    case DType::kQ6_K: return dequant_blocks<BlockQ6_K>(src, dst, n);
    case DType::kQ8_0R:
    case DType::kQ4_0R:
    case DType::kQ4_1R: return dequant_repacked(dtype, src, dst, n);
  }
  fail("dequantize_row: unknown dtype ", static_cast<int>(dtype));
}

void quantize_row(DType dtype, const float* src, void* dst, std::int64_t n) {
  (void)dtype_row_bytes(dtype, n);
  for (std::int64_t i = 0; i < n; ++i) {
    ZEBRA_CHECK(std::isfinite(src[i]), "quantize_row ", to_string(dtype), ": value ", i, " is ", src[i],
                " (only finite values can be stored)");
  }
  auto* p = static_cast<unsigned char*>(dst);
  switch (dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t h = dtype == DType::kF16 ? float_to_f16(src[i]) : float_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    case DType::kQ8_0: return quant_blocks<BlockQ8_0>(src, dst, n);
    case DType::kQ4_0: return quant_blocks<BlockQ4_0>(src, dst, n);
    case DType::kQ4_1: return quant_blocks<BlockQ4_1>(src, dst, n);
    case DType::kQ8_0R:
    case DType::kQ4_0R:
    case DType::kQ4_1R: {
      // As the ggml type, then repacked.
      const DType ggml = dtype == DType::kQ8_0R ? DType::kQ8_0 : dtype == DType::kQ4_0R ? DType::kQ4_0 : DType::kQ4_1;
      std::vector<unsigned char> row(dtype_row_bytes(ggml, n));
      quantize_row(ggml, src, row.data(), n);
      return repack_row(ggml, row.data(), dst, n);
    }
    default:
      fail("quantize_row: no reference quantizer for ", to_string(dtype),
           " (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the repacked Q8_0R, Q4_0R, Q4_1R)");
  }
}

}  // namespace zebra::quant
