// Which SIMD instruction sets this CPU offers, and the default kernel path of the ops.
//
// The build targets the building machine (-march=native) or a baseline, but the hot kernels (attention,
// the elementwise ops) are compiled once per path with function-level target attributes and chosen at run
// time, so one binary runs the AVX-512 path on a CPU that has it and the AVX2 path elsewhere. The scalar
// path is plain C++ and runs anywhere; it is also the path of the double-precision kernels.
//
// An op's path is ComputeOptions::simd (ops/compute.hpp). ZEBRA_SIMD=scalar|avx2|avx512 in the environment
// chooses the default of that member (a narrower path than the CPU offers, to compare paths); a path the CPU
// cannot run is refused with an error at first use.
#pragma once

namespace zebra {

enum class SimdPath {
  kScalar,  // portable C++ (one lane)
  kAvx2,    // AVX2 + FMA + F16C, 8 float lanes
  kAvx512,  // AVX-512 F/BW/VL/DQ, 16 float lanes
};

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512bf16 = false;
};

const CpuFeatures& cpu_features();
bool simd_path_supported(SimdPath path);
const char* to_string(SimdPath path);
// The widest supported path.
SimdPath best_simd_path();

// The default of ComputeOptions::simd: ZEBRA_SIMD when set, else best_simd_path(). Read once, then fixed for
// the process. Throws zebra::Error for a path this CPU cannot run.
SimdPath default_simd_path();
// Throws zebra::Error naming `what` when this CPU cannot run `path`.
void check_simd_path(SimdPath path, const char* what);

}  // namespace zebra
