// Causal multi-head attention with grouped KV heads, computed flash-style: query tiles against key
// tiles with an online softmax; only the log-sum-exp per (query, head) is saved for backward, which
// recomputes the probabilities. Key tiles outside the mask (causal, sliding window, document) are never
// visited, so a local layer costs O(T * window * head_dim) and nothing of size T x T is allocated.
//
// Layouts (row = token; strides in elements between consecutive tokens, so q/k/v may be column
// blocks of one fused QKV buffer):
//   q    [B, T,  n_heads,    head_dim]  row stride q_stride
//   k, v [B, Tk, n_kv_heads, head_dim]  row stride kv_stride (Tk = kv_len, by default T)
//   out  [B, T,  n_heads,    head_dim]  contiguous (row stride n_heads * head_dim)
//   lse  [B, n_heads, T]                natural-log sum of exp of the scaled, biased scores
// Query head h reads KV head h / (n_heads / n_kv_heads). Scores are (q . k) / sqrt(head_dim) plus,
// with ALiBi, -slope[h] * (i - j).
//
// Positions. Query row i sits at key position q_pos + i (by default 0 + i: queries and keys are the same
// tokens). A sequence split across processes (train/context_parallel.hpp) calls the kernels with the keys of
// a halo or of another process's slice: keys [0, Tk) then hold earlier tokens, and q_pos says where this
// slice's queries fall among them. The mask (ops/mask.hpp) and ALiBi read i as q_pos + i. A query row that sees
// no key of the call (possible only with q_pos > 0, e.g. a document that begins after the keys) gets out = 0
// and lse = -inf, so that merging partial results by their log-sum-exp weighs it zero; backward treats such a
// row (lse = -inf) as seeing nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "zebra/ops/compute.hpp"

namespace zebra {

struct AttentionShape {
  std::int64_t batch = 1;
  std::int64_t seq_len = 0;
  std::int64_t n_heads = 1;
  std::int64_t n_kv_heads = 1;
  std::int64_t head_dim = 0;
  std::int64_t q_stride = 0;   // 0 means n_heads * head_dim
  std::int64_t kv_stride = 0;  // 0 means n_kv_heads * head_dim
  std::int64_t kv_len = 0;     // key rows per sequence; 0 means seq_len
  std::int64_t q_pos = 0;      // key position of query row 0
};

struct AttentionMask {
  std::int64_t window;                      // kGlobalWindow (ops/mask.hpp) for a global layer
  const std::int32_t* doc_start = nullptr;  // [B, T] first key position of each query's document, or null
  const double* alibi_slopes = nullptr;     // [n_heads], or null for no bias
};

// Forward. Overwrites out and lse. options: threads, attention kernel / SIMD path (ops/compute.hpp).
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask, const ComputeOptions& options = {});

// Backward. Overwrites dq, dk, dv (same layouts and strides as q, k, v); reads out and lse from forward (or, for
// a call over part of the keys, the out and lse of the whole attention: its share of dq, dk, dv).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask,
                        const ComputeOptions& options = {});

// Edge of the square tiles the kernels work in (query rows and key columns alike).
inline constexpr std::int64_t kAttentionTile = 64;

// Work counters: how many (query tile, key tile) blocks a call visited and how many score entries
// (rows x keys) those blocks held. A local layer must visit O(T * window) entries, a global one
// O(T^2 / 2); tests and benchmarks check this through the overloads below.
struct AttentionStats {
  std::int64_t key_tiles = 0;
  std::int64_t score_entries = 0;
};

// Same as above, and overwrite *stats (when not null) with the work the call did.
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask, AttentionStats* stats, const ComputeOptions& options = {});
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask, AttentionStats* stats,
                        const ComputeOptions& options = {});

// The kernel variant a call with these options runs (never kDefault: that resolves through options.simd); throws
// when the CPU cannot run it. (AttentionKernel: ops/compute.hpp.)
AttentionKernel resolve_attention_kernel(const ComputeOptions& options);

// The kernels pack their inputs (K, V per kv head; Q, dO transposed per query tile) and accumulate dK, dV in a
// workspace that belongs to the calling thread and only grows, so that repeated calls allocate nothing: it keeps
// the size of the largest call. This is its size for attention_backward<float> of a shape (the forward pass
// needs less), for memory planning.
std::size_t attention_workspace_bytes(const AttentionShape& shape, const AttentionMask& mask);

// ALiBi slopes for n_heads heads (Press et al.; the interpolation for non-powers of two as in BLOOM).
std::vector<double> alibi_slopes(std::int64_t n_heads);

// Multiply-adds one attention layer performs, counting only visible (query, key) pairs:
// forward 2 matmuls (QK^T, PV) of head_dim each -> 4 * pairs * head_dim * n_heads FLOPs per sequence.
double attention_visible_pairs(std::int64_t seq_len, std::int64_t window);

}  // namespace zebra
