// Attention of a block of new queries against a KV cache plus the new tokens' own keys: the kernel behind
// decoding (one query) and chunked prefill (a chunk of queries) in model/generator.hpp.
//
// The n_new queries sit at absolute positions p0 .. p0 + n_new - 1. Their keys and values come from two
// stores, so that a chunk never has to be written into a ring buffer before it is read:
//   past  positions [past.begin, p0): position j lives in row (past.ring > 0 ? j % past.ring : j) of
//         past.k / past.v; KV head g of row `row` starts at g * head_stride + row * stride (interleaved rows
//         [rows, n_kv_heads, head_dim] by default, or head-major [n_kv_heads, rows, head_dim]); this is the KV
//         cache of one layer;
//   new   positions [p0, p0 + n_new): position j lives in row j - p0 of k_new / v_new.
// Query position i sees key position j exactly when key_visible(i, j, window) (ops/mask.hpp), so a
// chunk's queries see the cached keys and the earlier keys of the same chunk, and a chunk longer than a
// local layer's window still sees keys that the ring buffer will later drop. The past store must hold
// every key a query can see: past.begin <= first_visible_key(p0, window) (checked).
//
// Layouts (row = token):
//   q            [n_new, n_heads,    head_dim]  row stride q_stride
//   k_new, v_new [n_new, n_kv_heads, head_dim]  row stride new_stride
//   past.k/v     [rows, n_kv_heads, head_dim] or [n_kv_heads, rows, head_dim], see KvSource
//   out          [n_new, n_heads,    head_dim]  contiguous (overwritten)
// Query head h reads KV head h / (n_heads / n_kv_heads). Scores are (q . k) / sqrt(head_dim) plus, with
// ALiBi, -slope[h] * (i - j), as in ops/attention.hpp; the softmax is computed online (flash-style) over
// tiles of kAttentionCachedTile keys aligned to multiples of the tile in absolute position, so a query's
// arithmetic does not depend on how the sequence was cut into chunks. OpenMP runs over (KV head, query tile);
// the query heads sharing a KV head run in one task, which gathers each key tile once for all of them.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"
#include "zebra/util/dtype.hpp"

namespace zebra {

// The dtype a KvSource<T> holds by default: T itself.
template <typename T>
inline constexpr DType kDenseDType = sizeof(T) == 4 ? DType::kF32 : DType::kF64;

template <typename T>
struct KvSource {
  const void* k = nullptr;  // [rows, stride] values of `dtype`
  const void* v = nullptr;  // [rows, stride]
  // T (F32 / F64), or for T = float a 16-bit store (F16, BF16): its values are widened where they are read.
  DType dtype = kDenseDType<T>;
  std::int64_t stride = 0;       // elements between rows; 0 means n_kv_heads * head_dim
  std::int64_t head_stride = 0;  // elements between KV heads; 0 means head_dim (heads interleaved in a row)
  std::int64_t ring = 0;         // 0: row = position; > 0: row = position % ring (a ring buffer of `ring` rows)
  std::int64_t begin = 0;        // first position held
};

struct CachedAttentionShape {
  std::int64_t n_heads = 1;
  std::int64_t n_kv_heads = 1;
  std::int64_t head_dim = 0;
  std::int64_t q_stride = 0;    // 0 means n_heads * head_dim
  std::int64_t new_stride = 0;  // row stride of k_new / v_new; 0 means n_kv_heads * head_dim
};

inline constexpr std::int64_t kAttentionCachedTile = 64;

// out [n_new, n_heads * head_dim] overwritten. window: kGlobalWindow for a global layer. alibi_slopes:
// [n_heads] or null. options.threads bounds the OpenMP team (0: the caller's default).
//
// Two kernels, by the shape of the call: float queries of up to simd::kDecodeMaxRows rows (a decode step) run
// the split-K SIMD kernel of ops/simd/decode_attention.hpp on options.simd, which spreads even one query over
// every thread and reads 16-bit stores in registers; longer chunks (and double) run the tiled kernel described
// above, scalar C++ over head_dim known at compile time (32, 64, 128) that the compiler vectorises, widening a
// 16-bit store as it gathers each key tile.
template <typename T>
void attention_cached_forward(T* out, const T* q, const T* k_new, const T* v_new, std::int64_t n_new, std::int64_t p0,
                              const KvSource<T>& past, const CachedAttentionShape& shape, std::int64_t window,
                              const double* alibi_slopes, const ComputeOptions& options = {});

}  // namespace zebra
