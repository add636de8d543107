// Vectorised float row kernels behind RMSNorm, SwiGLU and cross-entropy, compiled once per instruction set
// (simd/traits.hpp) and chosen at run time. The ops (rmsnorm.cpp, swiglu.cpp, cross_entropy.cpp) thread over
// rows and call these per row; their double versions stay plain C++ (tests and gradient checks).
//
// Sums over a row are taken in W lanes and combined at the end, so the last bits of a result depend on the
// path (not on the thread count).
#pragma once

#include <cstdint>

#include "zebra/ops/cpu_features.hpp"

namespace zebra::simd {

enum class Isa {
  kScalar,
  kAvx2,
  kAvx512,
  kAvx512OnAvx2,  // the AVX-512 code's lane layout and reduction order in AVX2 instructions (for tests)
};

struct AdamWScalars {
  float b1, b2, c1, c2, lr, eps, wd, gs;  // c1, c2: bias corrections 1 / (1 - beta^step)
};

struct ElementwiseKernels {
  // sum_i x[i]^2
  float (*sum_squares)(const float* x, std::int64_t n);
  // y[i] = x[i] * r * g[i]
  void (*scale_mul)(float* y, const float* x, float r, const float* g, std::int64_t n);
  // sum_i a[i] * b[i] * c[i]
  float (*dot3)(const float* a, const float* b, const float* c, std::int64_t n);
  // RMSNorm backward of one row: dx[i] = r g[i] dy[i] - x[i] c;  dw[i] += dy[i] x[i] r
  void (*rms_backward_row)(float* dx, float* dw, const float* dy, const float* x, const float* g, float r, float c,
                           std::int64_t n);
  // y[i] = silu(gate[i]) * up[i]
  void (*swiglu)(float* y, const float* gate, const float* up, std::int64_t n);
  // dgate[i] = dy[i] up[i] s (1 + g (1 - s)), dup[i] = dy[i] g s, with s = sigmoid(g), g = gate[i]
  void (*swiglu_backward)(float* dgate, float* dup, const float* dy, const float* gate, const float* up,
                          std::int64_t n);
  // z = softmax(z) in place
  void (*softmax)(float* z, std::int64_t n);
  // AdamW on n elements (ops/adamw.hpp): g = grads * gs; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  // params -= lr (m c1 / (sqrt(v c2) + eps) + wd params)
  void (*adamw)(float* params, const float* grads, float* m, float* v, std::int64_t n, const AdamWScalars& s);
};

bool isa_supported(Isa isa);
const char* to_string(Isa isa);
// The kernels of one instruction set (throws zebra::Error when the CPU cannot run it).
const ElementwiseKernels& elementwise_kernels(Isa isa);
// The kernels of a SimdPath (ops/cpu_features.hpp; throws when the CPU cannot run it).
const ElementwiseKernels& elementwise(SimdPath path);

}  // namespace zebra::simd
