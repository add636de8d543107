#include "zebra/ops/simd/weight_kernels.hpp"

#include <cstdint>

#include "zebra/util/error.hpp"
// After every standard header (its target pragmas must not reach them).
#include "zebra/ops/simd/traits.hpp"

namespace zebra::simd {

namespace wk_scalar {
namespace {
using Traits = ScalarTraits<float>;
#include "zebra/ops/simd/weight_kernels.inl"
}  // namespace
constexpr const HalfKernels& kBf16 = kHalfKernels<Traits, Bf16Storage>;
constexpr const HalfKernels& kF16 = kHalfKernels<Traits, F16Storage>;
}  // namespace wk_scalar

ZEBRA_SIMD_BEGIN_AVX2
namespace wk_avx2 {
namespace {
using Traits = Avx2Traits;
#include "zebra/ops/simd/weight_kernels.inl"
}  // namespace
constexpr const HalfKernels& kBf16 = kHalfKernels<Traits, Bf16Storage>;
constexpr const HalfKernels& kF16 = kHalfKernels<Traits, F16Storage>;
}  // namespace wk_avx2
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace wk_avx512 {
namespace {
using Traits = Avx512Traits;
#include "zebra/ops/simd/weight_kernels.inl"
}  // namespace
constexpr const HalfKernels& kBf16 = kHalfKernels<Traits, Bf16Storage>;
constexpr const HalfKernels& kF16 = kHalfKernels<Traits, F16Storage>;
}  // namespace wk_avx512
ZEBRA_SIMD_END

const HalfKernels& half_kernels(DType dtype, SimdPath path) {
  ZEBRA_CHECK(dtype == DType::kBF16 || dtype == DType::kF16, "16-bit kernels: dtype must be BF16 or F16, got ",
              to_string(dtype));
  check_simd_path(path, "16-bit weight kernels");
  const bool bf16 = dtype == DType::kBF16;
  switch (path) {
    case SimdPath::kAvx512: return bf16 ? wk_avx512::kBf16 : wk_avx512::kF16;
    case SimdPath::kAvx2: return bf16 ? wk_avx2::kBf16 : wk_avx2::kF16;
    case SimdPath::kScalar: break;
  }
  return bf16 ? wk_scalar::kBf16 : wk_scalar::kF16;
}

}  // namespace zebra::simd
