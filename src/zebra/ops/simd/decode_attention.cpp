#include "zebra/ops/simd/decode_attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "zebra/ops/mask.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"
// After every standard header (its target pragmas must not reach them).
#include "zebra/ops/simd/traits.hpp"

namespace zebra::simd {

namespace da_scalar {
namespace {
using Traits = ScalarTraits<float>;
#include "zebra/ops/simd/decode_attention.inl"
}  // namespace
void run(const DecodeAttentionArgs& a, DType dtype) {
  if (dtype == DType::kF16) return decode_all<Traits, F16Store>(a);
  if (dtype == DType::kBF16) return decode_all<Traits, Bf16Store>(a);
  decode_all<Traits, F32Store>(a);
}
}  // namespace da_scalar

ZEBRA_SIMD_BEGIN_AVX2
namespace da_avx2 {
namespace {
using Traits = Avx2Traits;
#include "zebra/ops/simd/decode_attention.inl"
}  // namespace
void run(const DecodeAttentionArgs& a, DType dtype) {
  if (dtype == DType::kF16) return decode_all<Traits, F16Store>(a);
  if (dtype == DType::kBF16) return decode_all<Traits, Bf16Store>(a);
  decode_all<Traits, F32Store>(a);
}
}  // namespace da_avx2
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace da_avx512 {
namespace {
using Traits = Avx512Traits;
#include "zebra/ops/simd/decode_attention.inl"
}  // namespace
void run(const DecodeAttentionArgs& a, DType dtype) {
  if (dtype == DType::kF16) return decode_all<Traits, F16Store>(a);
  if (dtype == DType::kBF16) return decode_all<Traits, Bf16Store>(a);
  decode_all<Traits, F32Store>(a);
}
}  // namespace da_avx512
ZEBRA_SIMD_END

void decode_attention(const DecodeAttentionArgs& a, SimdPath path) {
  check_simd_path(path, "decode attention");
  ZEBRA_CHECK(a.dtype == DType::kF32 || a.dtype == DType::kF16 || a.dtype == DType::kBF16,
              "decode attention: the KV store must be F32, F16 or BF16, got ", to_string(a.dtype));
  ZEBRA_CHECK(a.n_new >= 1 && a.n_new <= kDecodeMaxRows, "decode attention: 1 to ", kDecodeMaxRows, " query rows, got ",
              a.n_new);
  switch (path) {
    case SimdPath::kAvx512: return da_avx512::run(a, a.dtype);
    case SimdPath::kAvx2: return da_avx2::run(a, a.dtype);
    case SimdPath::kScalar: break;
  }
  da_scalar::run(a, a.dtype);
}

}  // namespace zebra::simd
