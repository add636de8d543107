// SIMD traits for the kernels that are written once and compiled once per instruction set (attention tiles,
// the elementwise ops, the 16-bit weight kernels): each struct gives the element type T, the vector V of W lanes
// (W = 1: plain T), int32 lanes VI of the same count, and load/store/broadcast/fma/min/max/select on them, plus
// the register blocking (MR rows x NV vectors) of the attention micro-kernel. The float traits (not
// Avx512LayoutOnAvx2Traits) also convert W 16-bit values to and from a float vector: load_bf16 / load_f16
// (exact) and store_bf16 / store_f16 (round to nearest even, overflow to infinity, NaN stays NaN), for
// simd/weight_kernels.inl. The members of each struct carry their instruction set
// as a target attribute (#pragma GCC target below), so a binary built for any x86-64 baseline contains every
// path and picks one at run time (ops/cpu_features.hpp). Kernel code using a traits struct must itself be
// compiled under the same target (see ops/attention.cpp) so that these members inline into it.
//
// Include this after all standard headers: the target pragmas below must not reach their code.
#pragma once

#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "zebra/util/dtype.hpp"

// Regions of code compiled for one instruction set. AVX-512: the subset the kernels use (Skylake-X and later,
// Zen 4 and later).
#if defined(__clang__)
// clang (the fuzz build, scripts/fuzz.sh) has no GCC target pragmas: the same regions as an attribute on every
// function in them.
#define ZEBRA_SIMD_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
// clang-format off
#define ZEBRA_SIMD_BEGIN_AVX512 \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c\"))), apply_to = function)")
// clang-format on
#define ZEBRA_SIMD_END _Pragma("clang attribute pop")
#else
#define ZEBRA_SIMD_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define ZEBRA_SIMD_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c\")")
#define ZEBRA_SIMD_END _Pragma("GCC pop_options")
#endif

// Avx512LayoutOnAvx2Traits passes 64-byte vectors between functions compiled without AVX-512, whose calling
// convention GCC warns may differ between compilers (-Wpsabi, reported where templates are instantiated, so
// the warning is off for the rest of every file including this one: only the SIMD kernel files do). All such
// functions are inline and internal to those files, so no call crosses an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace zebra::simd {

// Portable path: one lane, plain C++ arithmetic (no fused multiply-add); also the double-precision kernels.
template <typename TT>
struct ScalarTraits {
  using T = TT;
  using V = TT;
  using VI = std::int32_t;
  static constexpr int W = 1, MR = 4, NV = 4;
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static VI loadi(const std::int32_t* p) { return *p; }
  static V set1(T x) { return x; }
  static VI seti(std::int32_t x) { return x; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V vmax(V a, V b) { return a > b ? a : b; }
  static V vmin(V a, V b) { return a < b ? a : b; }
  static VI to_int(V x) { return static_cast<VI>(x); }  // x holds an integer value
  static V to_float(VI i) { return static_cast<V>(i); }
  static V from_bits(VI i) { return std::bit_cast<V>(i); }
  static V select(VI mask, V a, V b) { return mask != 0 ? a : b; }
  static V vsqrt(V x) { return std::sqrt(x); }
  static T hsum(V v) { return v; }
  static T hmax(V v) { return v; }
  static V load_bf16(const std::uint16_t* p) { return static_cast<V>(bf16_to_float(*p)); }
  static V load_f16(const std::uint16_t* p) { return static_cast<V>(f16_to_float(*p)); }
  static void store_bf16(std::uint16_t* p, V v) { *p = float_to_bf16(static_cast<float>(v)); }
  static void store_f16(std::uint16_t* p, V v) { *p = float_to_f16(static_cast<float>(v)); }
};

}  // namespace zebra::simd

ZEBRA_SIMD_BEGIN_AVX2
namespace zebra::simd {

// AVX2: 8 float lanes, 6 x 2 vectors of accumulators (12 of the 16 ymm registers, plus 2 for B and 1 for A).
struct Avx2Traits {
  using T = float;
  using V = __m256;
  typedef std::int32_t VI __attribute__((vector_size(32)));
  static constexpr int W = 8, MR = 6, NV = 2;
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static VI loadi(const std::int32_t* p) {
    VI v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static V set1(T x) { return _mm256_set1_ps(x); }
  static VI seti(std::int32_t x) { return VI{} + x; }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V vmax(V a, V b) { return _mm256_max_ps(a, b); }
  static V vmin(V a, V b) { return _mm256_min_ps(a, b); }
  static VI to_int(V x) { return __builtin_convertvector(x, VI); }
  static V to_float(VI i) { return __builtin_convertvector(i, V); }
  static V from_bits(VI i) { return reinterpret_cast<V>(i); }
  static V select(VI mask, V a, V b) { return mask ? a : b; }
  static V vsqrt(V x) { return _mm256_sqrt_ps(x); }
  static T hsum(V v) {
    float l[8];
    std::memcpy(l, &v, sizeof l);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  }
  static T hmax(V v) {
    float l[8];
    std::memcpy(l, &v, sizeof l);
    float m = l[0];
    for (int i = 1; i < 8; ++i) m = l[i] > m ? l[i] : m;
    return m;
  }
  static V load_bf16(const std::uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V load_f16(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_bf16(std::uint16_t* p, V v) {
    // float_to_bf16 on 8 lanes: add 0x7fff plus the lowest kept bit (ties to even), keep the top half; NaN
    // keeps its top half with the quiet bit set. packus_epi32 packs each 128-bit half in order.
    const __m256i u = _mm256_castps_si256(v);
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                             _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)))),
        16);
    const __m256i nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
    const __m256i b = _mm256_blendv_epi8(r, q, nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
  }
  static void store_f16(std::uint16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

// The AVX-512 path's layout (16 lanes, 12 x 2 vectors of accumulators) compiled for AVX2, where each 16-lane
// operation becomes two 8-lane ones: slow, but it runs the exact tiling, padding, blocking and reduction order
// of the AVX-512 kernels on machines without AVX-512, so that tests can check that logic there.
struct Avx512LayoutOnAvx2Traits {
  using T = float;
  typedef float V __attribute__((vector_size(64)));
  typedef std::int32_t VI __attribute__((vector_size(64)));
  static constexpr int W = 16, MR = 12, NV = 2;
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static VI loadi(const std::int32_t* p) {
    VI v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static V set1(T x) { return V{} + x; }
  static VI seti(std::int32_t x) { return VI{} + x; }
  static V fma(V a, V b, V c) {
    __m256 a2[2], b2[2], c2[2];
    std::memcpy(a2, &a, sizeof a);
    std::memcpy(b2, &b, sizeof b);
    std::memcpy(c2, &c, sizeof c);
    c2[0] = _mm256_fmadd_ps(a2[0], b2[0], c2[0]);
    c2[1] = _mm256_fmadd_ps(a2[1], b2[1], c2[1]);
    V r;
    std::memcpy(&r, c2, sizeof r);
    return r;
  }
  static V vmax(V a, V b) { return a > b ? a : b; }
  static V vmin(V a, V b) { return a < b ? a : b; }
  static VI to_int(V x) { return __builtin_convertvector(x, VI); }
  static V to_float(VI i) { return __builtin_convertvector(i, V); }
  static V from_bits(VI i) { return reinterpret_cast<V>(i); }
  static V select(VI mask, V a, V b) { return mask ? a : b; }
  static V vsqrt(V x) {
    __m256 h[2];
    std::memcpy(h, &x, sizeof x);
    h[0] = _mm256_sqrt_ps(h[0]);
    h[1] = _mm256_sqrt_ps(h[1]);
    V r;
    std::memcpy(&r, h, sizeof r);
    return r;
  }
  // Same pairing order as Avx512Traits::hsum, so both give the same bits.
  static T hsum(V v) {
    float l[16];
    std::memcpy(l, &v, sizeof l);
    float h[8];
    for (int i = 0; i < 8; ++i) h[i] = l[i] + l[i + 8];
    return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
  }
  static T hmax(V v) {
    float l[16];
    std::memcpy(l, &v, sizeof l);
    float m = l[0];
    for (int i = 1; i < 16; ++i) m = l[i] > m ? l[i] : m;
    return m;
  }
};

}  // namespace zebra::simd
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace zebra::simd {

// AVX-512: 16 float lanes, 12 x 2 vectors of accumulators (24 of the 32 zmm registers, plus 2 for B, 1 for A).
struct Avx512Traits {
  using T = float;
  using V = __m512;
  typedef std::int32_t VI __attribute__((vector_size(64)));
  static constexpr int W = 16, MR = 12, NV = 2;
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static VI loadi(const std::int32_t* p) {
    VI v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static V set1(T x) { return _mm512_set1_ps(x); }
  static VI seti(std::int32_t x) { return VI{} + x; }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // Not _mm512_max_ps / _mm512_min_ps: GCC 12 warns (maybe-uninitialized) inside its own header for them.
  static V vmax(V a, V b) { return a > b ? a : b; }
  static V vmin(V a, V b) { return a < b ? a : b; }
  static VI to_int(V x) { return __builtin_convertvector(x, VI); }
  static V to_float(VI i) { return __builtin_convertvector(i, V); }
  static V from_bits(VI i) { return reinterpret_cast<V>(i); }
  static V select(VI mask, V a, V b) { return mask ? a : b; }
  static V vsqrt(V x) { return _mm512_maskz_sqrt_ps(0xffff, x); }  // (maskz: see vmax)
  static T hsum(V v) {
    float l[16];
    std::memcpy(l, &v, sizeof l);
    float h[8];
    for (int i = 0; i < 8; ++i) h[i] = l[i] + l[i + 8];
    return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
  }
  static T hmax(V v) {
    float l[16];
    std::memcpy(l, &v, sizeof l);
    float m = l[0];
    for (int i = 1; i < 16; ++i) m = l[i] > m ? l[i] : m;
    return m;
  }
  static V load_bf16(const std::uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
  }
  static V load_f16(const std::uint16_t* p) {
    return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store_bf16(std::uint16_t* p, V v) {
    // As Avx2Traits::store_bf16 on 16 lanes; cvtepi32_epi16 keeps the low half of each lane. (maskz forms: see
    // vmax.)
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_maskz_srli_epi32(0xffff, u, 16);
    const __m512i odd = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    const __m512i r =
        _mm512_maskz_srli_epi32(0xffff, _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
    const __mmask16 nan =
        _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i q = _mm512_or_si512(hi, _mm512_set1_epi32(0x0040));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_maskz_cvtepi32_epi16(0xffff, _mm512_mask_blend_epi32(nan, r, q)));
  }
  static void store_f16(std::uint16_t* p, V v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_maskz_cvtps_ph(0xffff, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

}  // namespace zebra::simd
ZEBRA_SIMD_END
