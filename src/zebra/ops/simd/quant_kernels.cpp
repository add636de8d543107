// The block kernels of simd/quant_kernels.hpp: a plain scalar reference, AVX2 (one 32-value block per 256-bit
// register) and AVX-512 (two blocks per 512-bit register, a last odd block on 256 bits). The weight blocks are
// read in place from (possibly unaligned) model bytes.
#include "zebra/ops/simd/quant_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "zebra/ops/quant/blocks.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/error.hpp"
// After every standard header (its target pragmas must not reach them).
#include "zebra/ops/simd/traits.hpp"

namespace zebra::simd {

namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ8_0;

std::uint16_t load_u16(const unsigned char* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Per format: the block type, where its quants start, and the scale of its offset term (the sum_a factor).
struct Q8_0Format {
  using Block = BlockQ8_0;
  static constexpr std::size_t kQs = offsetof(BlockQ8_0, qs);
  static constexpr bool kOffset = false;
  static float offset(const unsigned char*, float) { return 0.0f; }
};
struct Q4_0Format {
  using Block = BlockQ4_0;
  static constexpr std::size_t kQs = offsetof(BlockQ4_0, qs);
  static constexpr bool kOffset = true;
  static float offset(const unsigned char*, float dw) { return -8.0f * dw; }
};
struct Q4_1Format {
  using Block = BlockQ4_1;
  static constexpr std::size_t kQs = offsetof(BlockQ4_1, qs);
  static constexpr bool kOffset = true;
  static float offset(const unsigned char* b, float) { return f16_to_float(load_u16(b + offsetof(BlockQ4_1, m))); }
};

// The three parts of a quantized activation row (quant_kernels.hpp).
struct ActRow {
  const std::int8_t* qs;
  const float* d;
  const float* sum;
};
inline ActRow act_row(const void* act, std::int64_t i, std::int64_t cols) {
  const auto* p = static_cast<const unsigned char*>(act) + static_cast<std::size_t>(i) * act_row_bytes(cols);
  const auto* f = reinterpret_cast<const float*>(p + cols);
  return ActRow{reinterpret_cast<const std::int8_t*>(p), f, f + cols / kActBlock};
}

// The repacked layouts (util/dtype.hpp): quants of all blocks, then the f16 scales (then the minima).
template <DType D>
struct RepackedFormat {
  static constexpr DType kDType = D;
  static constexpr bool kQ8 = D == DType::kQ8_0R;
  static constexpr bool kMin = D == DType::kQ4_1R;
  static constexpr bool kOffset = D != DType::kQ8_0R;
  static constexpr std::size_t kQuantBytes = kQ8 ? 32 : 16;  // per block
};
using Q8_0RFormat = RepackedFormat<DType::kQ8_0R>;
using Q4_0RFormat = RepackedFormat<DType::kQ4_0R>;
using Q4_1RFormat = RepackedFormat<DType::kQ4_1R>;

}  // namespace

// ---- scalar reference ---------------------------------------------------------------------------------------

namespace qk_scalar {
namespace {

void quantize_activations(void* dst, const float* x, std::int64_t cols) {
  auto* qs = static_cast<std::int8_t*>(dst);
  auto* dd = reinterpret_cast<float*>(qs + cols);
  float* ds = dd + cols / kActBlock;
  for (std::int64_t b = 0; b < cols / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    float amax = 0.0f;
    for (std::int64_t i = 0; i < kActBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (std::int64_t i = 0; i < kActBlock; ++i) {
      const int q = static_cast<int>(std::nearbyint(xb[i] * id));  // the default mode: nearest even
      qs[b * kActBlock + i] = static_cast<std::int8_t>(q);
      sum += q;
    }
    dd[b] = d;
    ds[b] = d * static_cast<float>(sum);
  }
}

// The integer dot product of one weight block with 32 activation values.
int int_dot(const BlockQ8_0& w, const std::int8_t* a) {
  int s = 0;
  for (int i = 0; i < 32; ++i) s += w.qs[i] * a[i];
  return s;
}
template <typename B>
int int_dot4(const B& w, const std::int8_t* a) {
  int s = 0;
  for (int i = 0; i < 16; ++i) s += (w.qs[i] & 0x0f) * a[i] + (w.qs[i] >> 4) * a[i + 16];
  return s;
}
int int_dot(const BlockQ4_0& w, const std::int8_t* a) { return int_dot4(w, a); }
int int_dot(const BlockQ4_1& w, const std::int8_t* a) { return int_dot4(w, a); }

template <class F>
void gemv(float* out, std::int64_t ldo, const void* act, std::int64_t n, const void* w, std::size_t row_bytes,
          std::int64_t rows, std::int64_t cols) {
  using Block = typename F::Block;
  const std::int64_t nblk = cols / kActBlock;
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto* row = static_cast<const unsigned char*>(w) + static_cast<std::size_t>(r) * row_bytes;
    for (std::int64_t i = 0; i < n; ++i) {
      const ActRow a = act_row(act, i, cols);
      float acc = 0.0f, off = 0.0f;
      for (std::int64_t b = 0; b < nblk; ++b) {
        const unsigned char* p = row + static_cast<std::size_t>(b) * sizeof(Block);
        Block blk;
        std::memcpy(&blk, p, sizeof blk);
        const float dw = f16_to_float(blk.d);
        acc += (dw * a.d[b]) * static_cast<float>(int_dot(blk, a.qs + b * kActBlock));
        if constexpr (F::kOffset) off += F::offset(p, dw) * a.sum[b];
      }
      out[i * ldo + r] = acc + off;
    }
  }
}

template <class F>
void to_f32(float* dst, const void* src, std::int64_t n) {
  quant::dequantize_row(quant::block_dtype<typename F::Block>(), src, dst, n);
}

// A repacked row: the same integer dots, scale products and sums, in the same order, as gemv on the ggml row
// it came from (so the two agree bit for bit).
template <class F>
void gemv_repacked(float* out, std::int64_t ldo, const void* act, std::int64_t n, const void* w, std::size_t row_bytes,
                   std::int64_t rows, std::int64_t cols) {
  const std::int64_t nblk = cols / kActBlock;
  thread_local std::vector<std::int8_t> q;
  thread_local std::vector<float> d, c;
  q.resize(static_cast<std::size_t>(cols));
  d.resize(static_cast<std::size_t>(nblk));
  c.resize(static_cast<std::size_t>(nblk));
  for (std::int64_t r = 0; r < rows; ++r) {
    quant::repacked_parts(F::kDType, static_cast<const unsigned char*>(w) + static_cast<std::size_t>(r) * row_bytes,
                          cols, q.data(), d.data(), c.data());
    for (std::int64_t i = 0; i < n; ++i) {
      const ActRow a = act_row(act, i, cols);
      float acc = 0.0f, off = 0.0f;
      for (std::int64_t b = 0; b < nblk; ++b) {
        int dot = 0;
        for (std::int64_t j = 0; j < kActBlock; ++j)
          dot += q[static_cast<std::size_t>(b * kActBlock + j)] * a.qs[b * kActBlock + j];
        acc += (d[static_cast<std::size_t>(b)] * a.d[b]) * static_cast<float>(dot);
        if constexpr (F::kOffset) off += c[static_cast<std::size_t>(b)] * a.sum[b];
      }
      out[i * ldo + r] = acc + off;
    }
  }
}

template <class F>
void to_f32_repacked(float* dst, const void* src, std::int64_t n) {
  quant::dequantize_row(F::kDType, src, dst, n);
}

template <class F>
constexpr QuantKernels kRepacked{&quantize_activations, &gemv_repacked<F>, &to_f32_repacked<F>};

void gemv_f32(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const float* w, std::int64_t w_stride,
              std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < n; ++i) {
      float acc = 0.0f;
      for (std::int64_t k = 0; k < cols; ++k) acc += inp[i * cols + k] * w[r * w_stride + k];
      out[i * ldo + r] = acc;
    }
  }
}

template <class F>
constexpr QuantKernels kKernels{&quantize_activations, &gemv<F>, &to_f32<F>};

}  // namespace
}  // namespace qk_scalar

// ---- AVX2 and AVX-512: the same code twice, the second with the two-block loop ------------------------------

ZEBRA_SIMD_BEGIN_AVX2
namespace qk_avx2 {
namespace {
#define ZEBRA_QK_WIDE 0
#include "zebra/ops/simd/quant_kernels.inl"
#undef ZEBRA_QK_WIDE
}  // namespace
}  // namespace qk_avx2
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace qk_avx512 {
namespace {
#define ZEBRA_QK_WIDE 1
#include "zebra/ops/simd/quant_kernels.inl"
#undef ZEBRA_QK_WIDE
}  // namespace
}  // namespace qk_avx512
ZEBRA_SIMD_END

bool has_quant_kernels(DType dtype) {
  return dtype == DType::kQ8_0 || dtype == DType::kQ4_0 || dtype == DType::kQ4_1 || dtype == DType::kQ8_0R ||
         dtype == DType::kQ4_0R || dtype == DType::kQ4_1R;
}

const QuantKernels& quant_kernels(DType dtype, SimdPath path) {
  check_simd_path(path, "block-quantized weight kernels");
  switch (dtype) {
    case DType::kQ8_0:
      return path == SimdPath::kAvx512 ? qk_avx512::kKernels<Q8_0Format>
             : path == SimdPath::kAvx2 ? qk_avx2::kKernels<Q8_0Format>
                                       : qk_scalar::kKernels<Q8_0Format>;
    case DType::kQ4_0:
      return path == SimdPath::kAvx512 ? qk_avx512::kKernels<Q4_0Format>
             : path == SimdPath::kAvx2 ? qk_avx2::kKernels<Q4_0Format>
                                       : qk_scalar::kKernels<Q4_0Format>;
    case DType::kQ4_1:
      return path == SimdPath::kAvx512 ? qk_avx512::kKernels<Q4_1Format>
             : path == SimdPath::kAvx2 ? qk_avx2::kKernels<Q4_1Format>
                                       : qk_scalar::kKernels<Q4_1Format>;
    case DType::kQ8_0R:
      return path == SimdPath::kAvx512 ? qk_avx512::kRepacked<Q8_0RFormat>
             : path == SimdPath::kAvx2 ? qk_avx2::kRepacked<Q8_0RFormat>
                                       : qk_scalar::kRepacked<Q8_0RFormat>;
    case DType::kQ4_0R:
      return path == SimdPath::kAvx512 ? qk_avx512::kRepacked<Q4_0RFormat>
             : path == SimdPath::kAvx2 ? qk_avx2::kRepacked<Q4_0RFormat>
                                       : qk_scalar::kRepacked<Q4_0RFormat>;
    case DType::kQ4_1R:
      return path == SimdPath::kAvx512 ? qk_avx512::kRepacked<Q4_1RFormat>
             : path == SimdPath::kAvx2 ? qk_avx2::kRepacked<Q4_1RFormat>
                                       : qk_scalar::kRepacked<Q4_1RFormat>;
    default: break;
  }
  fail("block-quantized weight kernels: no kernels for ", to_string(dtype),
       " (Q8_0, Q4_0, Q4_1 and their repacked forms)");
}

void gemv_f32(float* out, std::int64_t ldo, const float* inp, std::int64_t n, const float* w, std::int64_t w_stride,
              std::int64_t rows, std::int64_t cols, SimdPath path) {
  check_simd_path(path, "fp32 matrix-vector kernel");
  switch (path) {
    case SimdPath::kAvx512: return qk_avx512::gemv_f32(out, ldo, inp, n, w, w_stride, rows, cols);
    case SimdPath::kAvx2: return qk_avx2::gemv_f32(out, ldo, inp, n, w, w_stride, rows, cols);
    case SimdPath::kScalar: break;
  }
  qk_scalar::gemv_f32(out, ldo, inp, n, w, w_stride, rows, cols);
}

}  // namespace zebra::simd
