#include "zebra/ops/convert.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "zebra/ops/parallel.hpp"
#include "zebra/ops/simd/weight_kernels.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Elements per task: a multiple of every path's lane count, so that only the last task has a scalar tail.
constexpr std::int64_t kChunk = std::int64_t{1} << 14;

// Both directions: checks, the F32 copy, then f(kernels, i0, len) on chunks of [0, n), threaded.
template <typename F>
void convert(const char* what, DType dtype, void* dst, const void* src, std::int64_t n, const ComputeOptions& options,
             F&& f) {
  ZEBRA_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16, what,
              ": dtype must be F32, BF16 or F16, got ", to_string(dtype));
  ZEBRA_CHECK(n >= 0, what, ": n must be >= 0, got ", n);
  if (n == 0) return;
  if (dtype == DType::kF32) {
    std::memmove(dst, src, static_cast<std::size_t>(n) * sizeof(float));
    return;
  }
  const simd::HalfKernels& k = simd::half_kernels(dtype, options.simd);
  const ThreadScope threads(options);
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (worth_parallel(n) && chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) f(k, c * kChunk, std::min(kChunk, n - c * kChunk));
}

}  // namespace

void convert_from_f32(DType dtype, void* dst, const float* src, std::int64_t n, const ComputeOptions& options) {
  auto* d = static_cast<std::uint16_t*>(dst);
  convert("convert_from_f32", dtype, dst, src, n, options,
          [&](const simd::HalfKernels& k, std::int64_t i0, std::int64_t len) { k.from_f32(d + i0, src + i0, len); });
}

void convert_to_f32(float* dst, DType dtype, const void* src, std::int64_t n, const ComputeOptions& options) {
  const auto* s = static_cast<const std::uint16_t*>(src);
  convert("convert_to_f32", dtype, dst, src, n, options,
          [&](const simd::HalfKernels& k, std::int64_t i0, std::int64_t len) { k.to_f32(dst + i0, s + i0, len); });
}

}  // namespace zebra
