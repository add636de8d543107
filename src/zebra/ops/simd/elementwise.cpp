#include "zebra/ops/simd/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/util/error.hpp"
// After every standard header (its target pragmas must not reach them).
#include "zebra/ops/simd/traits.hpp"

namespace zebra::simd {

namespace ew_scalar {
namespace {
using Traits = ScalarTraits<float>;
#include "zebra/ops/simd/elementwise_kernels.inl"
}  // namespace
constexpr const ElementwiseKernels& kKernels = kKernelTable<Traits>;
}  // namespace ew_scalar

ZEBRA_SIMD_BEGIN_AVX2
namespace ew_avx2 {
namespace {
using Traits = Avx2Traits;
#include "zebra/ops/simd/elementwise_kernels.inl"
}  // namespace
constexpr const ElementwiseKernels& kKernels = kKernelTable<Traits>;
}  // namespace ew_avx2

namespace ew_avx512_layout {
namespace {
using Traits = Avx512LayoutOnAvx2Traits;
#include "zebra/ops/simd/elementwise_kernels.inl"
}  // namespace
constexpr const ElementwiseKernels& kKernels = kKernelTable<Traits>;
}  // namespace ew_avx512_layout
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace ew_avx512 {
namespace {
using Traits = Avx512Traits;
#include "zebra/ops/simd/elementwise_kernels.inl"
}  // namespace
constexpr const ElementwiseKernels& kKernels = kKernelTable<Traits>;
}  // namespace ew_avx512
ZEBRA_SIMD_END

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2:
    case Isa::kAvx512OnAvx2: return simd_path_supported(SimdPath::kAvx2);
    case Isa::kAvx512: return simd_path_supported(SimdPath::kAvx512);
  }
  return false;
}

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512OnAvx2: return "avx512-layout-on-avx2";
  }
  return "?";
}

const ElementwiseKernels& elementwise_kernels(Isa isa) {
  ZEBRA_CHECK(isa_supported(isa), "elementwise kernels: this CPU cannot run the ", to_string(isa), " path");
  switch (isa) {
    case Isa::kScalar: return ew_scalar::kKernels;
    case Isa::kAvx2: return ew_avx2::kKernels;
    case Isa::kAvx512OnAvx2: return ew_avx512_layout::kKernels;
    case Isa::kAvx512: return ew_avx512::kKernels;
  }
  return ew_scalar::kKernels;
}

const ElementwiseKernels& elementwise(SimdPath path) {
  check_simd_path(path, "elementwise kernels");
  switch (path) {
    case SimdPath::kAvx512: return ew_avx512::kKernels;
    case SimdPath::kAvx2: return ew_avx2::kKernels;
    case SimdPath::kScalar: break;
  }
  return ew_scalar::kKernels;
}

}  // namespace zebra::simd
