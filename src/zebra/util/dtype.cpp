#include "zebra/util/dtype.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::int64_t block_elements;
  std::size_t block_bytes;
};

// ggml's block sizes (ggml-common.h): Q8_0 = f16 + 32 int8; Q4_0 = f16 + 16; Q4_1 = 2 f16 + 16;
// Q4_K = 2 f16 + 12 scale bytes + 128; Q5_K = Q4_K + 32 high bits; Q6_K = 128 + 64 + 16 scales + f16.
constexpr DTypeInfo kInfo[] = {
    {DType::kF32, "F32", 1, 4},       {DType::kF16, "F16", 1, 2},       {DType::kBF16, "BF16", 1, 2},
    {DType::kF64, "F64", 1, 8},       {DType::kQ8_0, "Q8_0", 32, 34},   {DType::kQ4_0, "Q4_0", 32, 18},
    {DType::kQ4_1, "Q4_1", 32, 20},   {DType::kQ4_K, "Q4_K", 256, 144}, {DType::kQ5_K, "Q5_K", 256, 176},
    {DType::kQ6_K, "Q6_K", 256, 210}, {DType::kQ8_0R, "Q8_0R", 32, 34}, {DType::kQ4_0R, "Q4_0R", 32, 18},
    {DType::kQ4_1R, "Q4_1R", 32, 20},
};

const DTypeInfo& info(DType d) {
  for (const DTypeInfo& i : kInfo)
    if (i.dtype == d) return i;
  fail("dtype: unknown enumerator ", static_cast<int>(d));
}

}  // namespace

const char* to_string(DType d) { return info(d).name; }

DType parse_dtype(const std::string& s) {
  if (s == "float32") return DType::kF32;
  if (s == "float16") return DType::kF16;
  if (s == "bfloat16") return DType::kBF16;
  if (s == "float64") return DType::kF64;
  std::string allowed;
  for (const DTypeInfo& i : kInfo) {
    std::string lower = i.name;
    for (char& ch : lower) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    if (s == i.name || s == lower) return i.dtype;
    allowed += (allowed.empty() ? "" : ", ") + std::string(i.name);
  }
  fail("dtype: got '", s.substr(0, 64), "', allowed: ", allowed);
}

bool dtype_is_quantized(DType d) { return info(d).block_elements > 1; }
std::int64_t dtype_block_elements(DType d) { return info(d).block_elements; }
std::size_t dtype_block_bytes(DType d) { return info(d).block_bytes; }

std::size_t dtype_size(DType d) {
  ZEBRA_CHECK(!dtype_is_quantized(d), "dtype ", to_string(d), " is block-quantized: it has no per-element size");
  return info(d).block_bytes;
}

std::size_t dtype_row_bytes(DType d, std::int64_t n) {
  const DTypeInfo& i = info(d);
  ZEBRA_CHECK(n >= 0 && n % i.block_elements == 0, "a row of ", i.name, " needs a multiple of ", i.block_elements,
              " elements, got ", n);
  const auto blocks = static_cast<std::uint64_t>(n / i.block_elements);
  ZEBRA_CHECK(blocks <= std::numeric_limits<std::size_t>::max() / i.block_bytes, "a row of ", n, " ", i.name,
              " elements overflows the address space");
  return static_cast<std::size_t>(blocks) * i.block_bytes;
}

std::uint16_t float_to_bf16(float x) {
  std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x0040u);  // quiet NaN
  // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even; a carry into the
  // exponent is correct, and the largest finite values round to infinity as they should.
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<std::uint16_t>(b >> 16);
}

std::uint16_t float_to_f16(float x) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  const auto sign = static_cast<std::uint16_t>((b >> 16) & 0x8000u);
  const std::uint32_t a = b & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  // 65520 is halfway between 65504 (the largest half) and 65536; the tie goes to the even neighbour,
  // which is infinity.
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a < 0x38800000u) {
    // Below 2^-14: a subnormal half m * 2^-24. Scaling by 2^24 is exact; nearbyint rounds to nearest
    // even in the default mode. m == 1024 is exactly the bit pattern of the smallest normal.
    const float m = std::nearbyint(std::bit_cast<float>(a) * 16777216.0f);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(m));
  }
  // Normal: drop 13 mantissa bits with round-to-nearest-even, then rebias the exponent (127 -> 15).
  const std::uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | ((r >> 13) - (112u << 10)));
}

namespace {

// Rounds to float "to odd" (truncate, then set the last bit when inexact). Rounding that result to a
// format with at least two fewer mantissa bits (bf16: 8, f16: 11, float: 24) gives the correctly
// rounded result, which plain double -> float -> half would not at ties.
float round_to_odd_float(double x) {
  float f = static_cast<float>(x);
  if (std::isnan(x) || static_cast<double>(f) == x) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(x)) f = std::nextafter(f, 0.0f);
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) | 1u);
}

}  // namespace

std::uint16_t double_to_bf16(double x) { return float_to_bf16(round_to_odd_float(x)); }
std::uint16_t double_to_f16(double x) { return float_to_f16(round_to_odd_float(x)); }

namespace {

// dst[i] = the i-th S stored (unaligned) at p.
template <typename S, typename T>
void widen(const unsigned char* p, T* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    S v;
    std::memcpy(&v, p + sizeof(S) * i, sizeof(S));
    dst[i] = static_cast<T>(v);
  }
}

template <typename T>
void convert_floating_to(DType d, const void* src, T* dst, std::size_t n) {
  if (n == 0 && !dtype_is_quantized(d)) return;  // src and dst may be null: memcpy must not see them
  const auto* p = static_cast<const unsigned char*>(src);
  switch (d) {
    case DType::kF32:
      if constexpr (std::is_same_v<T, float>) {
        std::memcpy(dst, src, n * sizeof(float));
      } else {
        widen<float>(p, dst, n);
      }
      return;
    case DType::kF64: widen<double>(p, dst, n); return;
    case DType::kF16:
    case DType::kBF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = static_cast<T>(d == DType::kF16 ? f16_to_float(h) : bf16_to_float(h));
      }
      return;
    default: fail("dtype ", to_string(d), " is not a floating type (F32, F16, BF16, F64)");
  }
}

}  // namespace

void convert_floating(DType d, const void* src, float* dst, std::size_t n) { convert_floating_to(d, src, dst, n); }
void convert_floating(DType d, const void* src, double* dst, std::size_t n) { convert_floating_to(d, src, dst, n); }

float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal: exact
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(v) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

}  // namespace zebra
