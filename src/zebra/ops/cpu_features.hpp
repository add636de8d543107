// Which SIMD instruction sets this CPU offers, and which kernel path the ops use.
//
// The build targets the building machine (-march=native) or a baseline, but the hot kernels (attention,
// the elementwise ops) are compiled once per path with function-level target attributes and chosen at run
// time, so one binary runs the AVX-512 path on a CPU that has it and the AVX2 path elsewhere. The scalar
// path is plain C++ and runs anywhere; it is also the path of the double-precision kernels.
//
// ZEBRA_SIMD=scalar|avx2|avx512 in the environment asks for a path (a narrower one than the CPU offers, to
// compare paths); a path the CPU cannot run is refused with an error at first use.
#pragma once

namespace zebra {

enum class SimdPath {
  kScalar,   // portable C++ (one lane)
  kAvx2,     // AVX2 + FMA, 8 float lanes
  kAvx512,   // AVX-512 F/BW/VL/DQ, 16 float lanes
};

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
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

// The path the kernels use: ZEBRA_SIMD when set, else best_simd_path(); set_simd_path changes it for the
// whole process (tests and benchmarks; not thread-safe against running kernels). Both throw zebra::Error for
// a path this CPU cannot run.
SimdPath active_simd_path();
void set_simd_path(SimdPath path);

}  // namespace zebra
