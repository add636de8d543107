// The decode attention kernel behind ops/attention_cached.hpp for a few float queries (one decode step of one
// sequence, n_new <= kDecodeMaxRows): split-K ("flash decoding") over the visible keys so that a single query
// row still spreads over every thread, reading the past keys and values in their stored type (F32, F16, BF16)
// and converting them in registers. Compiled once per SIMD path (scalar reference, AVX2, AVX-512) and chosen at
// run time.
//
// Work: keys are cut into chunks of kDecodeChunk positions aligned to multiples of kDecodeChunk in absolute
// position. A task is (query row, KV head, chunk): the scores of the `group` query heads reading that KV head
// against the chunk's visible keys (one pass over the keys), their softmax partial (max m, sum l) and the
// partial output o = sum p v (one pass over the values). A second step combines each head's partials in chunk
// order: M = max m_c, L = sum l_c e^(m_c - M), out = sum o_c e^(m_c - M) / L. The chunks are fixed by position
// and combined in order, so the result does not depend on the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/util/dtype.hpp"

namespace zebra::simd {

inline constexpr std::int64_t kDecodeMaxRows = 4;
inline constexpr std::int64_t kDecodeChunk = 256;

// Layouts as in ops/attention_cached.hpp (elements, not bytes); the past store holds `dtype` values.
struct DecodeAttentionArgs {
  float* out = nullptr;  // [n_new, out_stride]
  const float* q = nullptr;
  std::int64_t q_stride = 0;
  const float* k_new = nullptr;
  const float* v_new = nullptr;
  std::int64_t new_stride = 0;
  const void* k_past = nullptr;
  const void* v_past = nullptr;
  DType dtype = DType::kF32;
  std::int64_t past_stride = 0, past_head_stride = 0, ring = 0;
  std::int64_t n_new = 0, p0 = 0, window = 0;
  std::int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, out_stride = 0;
  const double* alibi_slopes = nullptr;  // [n_heads] or null
  float scale = 1.0f;
  int threads = 1;  // the OpenMP team (1: the calling thread alone)
};

// Runs the kernel on `path` (throws when the CPU cannot run it, or for a dtype other than F32, F16, BF16).
void decode_attention(const DecodeAttentionArgs& args, SimdPath path);

}  // namespace zebra::simd
