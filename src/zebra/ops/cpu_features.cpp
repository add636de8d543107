#include "zebra/ops/cpu_features.hpp"

#include <cpuid.h>

#include <cstdlib>
#include <string>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

CpuFeatures detect() {
  __builtin_cpu_init();
  CpuFeatures f;
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // GCC's __builtin_cpu_supports has no "f16c": CPUID leaf 1, ECX bit 29.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) f.f16c = (ecx & bit_F16C) != 0;
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  return f;
}

SimdPath parse_path(const std::string& s) {
  if (s == "scalar") return SimdPath::kScalar;
  if (s == "avx2") return SimdPath::kAvx2;
  if (s == "avx512") return SimdPath::kAvx512;
  fail("ZEBRA_SIMD must be one of scalar, avx2, avx512; got '", s, "'");
}

SimdPath initial_path() {
  const char* env = std::getenv("ZEBRA_SIMD");
  if (env == nullptr || *env == '\0') return best_simd_path();
  const SimdPath p = parse_path(env);
  ZEBRA_CHECK(simd_path_supported(p), "ZEBRA_SIMD=", env,
              " asks for a path this CPU cannot run (best: ", to_string(best_simd_path()), ")");
  return p;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool simd_path_supported(SimdPath path) {
  const CpuFeatures& f = cpu_features();
  switch (path) {
    case SimdPath::kScalar: return true;
    case SimdPath::kAvx2: return f.avx2 && f.fma && f.f16c;
    case SimdPath::kAvx512: return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

const char* to_string(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar: return "scalar";
    case SimdPath::kAvx2: return "avx2";
    case SimdPath::kAvx512: return "avx512";
  }
  return "?";
}

SimdPath best_simd_path() {
  if (simd_path_supported(SimdPath::kAvx512)) return SimdPath::kAvx512;
  if (simd_path_supported(SimdPath::kAvx2)) return SimdPath::kAvx2;
  return SimdPath::kScalar;
}

SimdPath default_simd_path() {
  static const SimdPath path = initial_path();
  return path;
}

void check_simd_path(SimdPath path, const char* what) {
  ZEBRA_CHECK(simd_path_supported(path), what, ": SIMD path ", to_string(path),
              " is not supported by this CPU (best: ", to_string(best_simd_path()), ")");
}

}  // namespace zebra
