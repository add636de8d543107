// Flash-style causal attention (see attention.hpp for layouts).
//
// Forward, per (batch, head, query tile [i0, i1)):
//   for each key tile [j0, j1) inside [min_r first_visible_key(i0 + r), i1):
//     S = (Q * scale) K^T (+ ALiBi)            S: [tile, tile]
//     m_new = max(m, rowmax S); P = exp(S - m_new)
//     l = l * exp(m - m_new) + rowsum P;  O = O * exp(m - m_new) + P V
//   out = O / l, lse = m + log(l)
// Backward (FlashAttention-2), per query tile, walking exactly the key tiles the forward pass walked:
//   P = exp(S - lse), dP = dO V^T, dS = P o (dP - D) with D = rowsum(dO o out)
//   dV += P^T dO, dK += dS^T (Q * scale), dQ += dS K * scale.
// Entries a query may not see (mask.hpp) are set to kMasked before the softmax, so that their P and dS are
// exact zeros; edge tiles also restrict each product to the rows' visible ranges (which skips work without
// changing a result). The score tile is held transposed (keys x queries) so that the softmax runs across SIMD
// lanes; each call first packs K, V per kv head and Q, dO transposed per query tile (PackedInputs), so that
// every product reads contiguous blocks. The tile kernels live in simd/attention_kernels.inl, compiled once per
// SIMD path (scalar, AVX2, AVX-512) and chosen at run time (ops/cpu_features.hpp, AttentionKernel).
//
// Threads. Forward: one task per (batch, head, query tile). Backward: dK/dV of a kv head collect from every
// query tile of every head in its group, so tasks are (batch, kv head, chunk of query tiles); when there are
// fewer than kMinBackwardTasks (batch, kv head) pairs, each pair's query tiles are cut into chunks of equal work,
// every chunk but the first accumulating dK/dV into a partial buffer of its key range, added afterwards in
// chunk order. The chunking depends only on the shape and mask, never on the thread count, so results are
// bit-identical for any number of threads.
//
// Measured (docs/performance.md, `zebra bench attention`).
#include "zebra/ops/attention.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "zebra/ops/cpu_features.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"
// Last: its target regions must not reach the code of any other header.
#include "zebra/ops/simd/traits.hpp"

namespace zebra {

namespace {

constexpr std::int64_t kTile = kAttentionTile;

// Score of an entry a query may not see, and the running maximum before any key: far below any real score
// (|q.k| / sqrt(hd) stays many orders of magnitude smaller) yet finite, so that exp(kMasked - m) is exactly 0
// against a real maximum m (exp_poly returns 0 below -87) and differences of two such values are 0 instead of
// NaN. A query column whose keys in a tile are all masked before it has met a visible key briefly accumulates
// exp(0) = 1 terms; the first visible key then rescales them by exp(kMasked - m) = 0, so they vanish exactly
// (every query sees itself).
constexpr float kMasked = -1e30f;

// Backward tasks wanted at least, so that a single sequence with few KV heads still keeps every core busy
// (4 per core on the 2-core target; more would only cost partial-buffer memory).
constexpr std::int64_t kMinBackwardTasks = 8;

// Below this many multiply-adds (about 50 us on one core) a call runs on one thread: waking a team costs
// more than it saves, and much more on a busy machine (finite-difference checks make thousands of tiny calls).
constexpr double kParallelMinWork = 1 << 18;

// Shape with defaults resolved and every argument checked.
struct Dims {
  std::int64_t batch, seq_len, n_heads, n_kv_heads, head_dim, group;
  std::int64_t kv_len, q_pos;                    // key rows per sequence; key position of query row 0
  std::int64_t q_stride, kv_stride, out_stride;  // row strides of q, k/v, out
  std::int64_t window;
  double scale;
};

Dims resolve(const AttentionShape& shape, const AttentionMask& mask) {
  ZEBRA_CHECK(shape.batch >= 0 && shape.seq_len >= 0, "attention: batch and seq_len must be >= 0, got ", shape.batch,
              " and ", shape.seq_len);
  ZEBRA_CHECK(shape.seq_len < (std::int64_t{1} << 30), "attention: seq_len must be < 2^30, got ", shape.seq_len);
  ZEBRA_CHECK(shape.kv_len >= 0 && shape.kv_len < (std::int64_t{1} << 30) && shape.q_pos >= 0 &&
                  shape.q_pos < (std::int64_t{1} << 30),
              "attention: kv_len and q_pos must lie in [0, 2^30), got ", shape.kv_len, " and ", shape.q_pos);
  ZEBRA_CHECK(shape.head_dim > 0, "attention: head_dim must be > 0, got ", shape.head_dim);
  ZEBRA_CHECK(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
              "attention: n_heads must be a positive multiple of n_kv_heads, got n_heads=", shape.n_heads,
              " n_kv_heads=", shape.n_kv_heads);
  ZEBRA_CHECK(mask.window >= 1, "attention: window must be >= 1 (kGlobalWindow for global), got ", mask.window);
  Dims d{};
  d.batch = shape.batch;
  d.seq_len = shape.seq_len;
  d.kv_len = shape.kv_len == 0 ? shape.seq_len : shape.kv_len;
  d.q_pos = shape.q_pos;
  d.n_heads = shape.n_heads;
  d.n_kv_heads = shape.n_kv_heads;
  d.head_dim = shape.head_dim;
  d.group = shape.n_heads / shape.n_kv_heads;
  d.out_stride = shape.n_heads * shape.head_dim;
  d.q_stride = shape.q_stride == 0 ? d.out_stride : shape.q_stride;
  d.kv_stride = shape.kv_stride == 0 ? shape.n_kv_heads * shape.head_dim : shape.kv_stride;
  ZEBRA_CHECK(d.q_stride >= d.out_stride, "attention: q_stride ", d.q_stride, " is less than n_heads*head_dim ",
              d.out_stride);
  ZEBRA_CHECK(d.kv_stride >= shape.n_kv_heads * shape.head_dim, "attention: kv_stride ", d.kv_stride,
              " is less than n_kv_heads*head_dim ", shape.n_kv_heads * shape.head_dim);
  d.window = mask.window;
  d.scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  // A document starts at or before its query: 0 <= doc_start[t] <= q_pos + t.
  if (mask.doc_start != nullptr) {
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t t = 0; t < d.seq_len; ++t) {
        std::int64_t s = mask.doc_start[b * d.seq_len + t];
        ZEBRA_CHECK(s >= 0 && s <= d.q_pos + t, "attention: doc_start[", b, ", ", t, "] must lie in [0, ", d.q_pos + t,
                    "], got ", s);
      }
    }
  }
  return d;
}

double work_of(const Dims& d) {
  return attention_visible_pairs(d.seq_len, d.window) * static_cast<double>(d.batch * d.n_heads * d.head_dim);
}

// First key a query tile visits: the smallest first visible key of its rows (at most kv_len).
std::int64_t tile_key_begin(const Dims& d, const std::int32_t* doc_row, std::int64_t i0) {
  const std::int64_t i1 = std::min(d.seq_len, i0 + kTile);
  std::int64_t lowest = d.q_pos + i0;
  for (std::int64_t i = i0; i < i1; ++i) {
    lowest = std::min(lowest, first_visible_key(d.q_pos + i, d.window, doc_row == nullptr ? 0 : doc_row[i]));
  }
  return std::min(lowest, d.kv_len);
}

// One past the last key a query tile [i0, i1) visits (causal, and inside the keys).
std::int64_t tile_key_end(const Dims& d, std::int64_t i1) { return std::min(d.kv_len, d.q_pos + i1); }

// One backward task: query tiles [tile_begin, tile_end) of every head reading kv head `kvh` of sequence b.
// Chunks > 0 accumulate dK then dV for keys [key_begin, key_end) into partials + partial_offset (two
// [key_end - key_begin, hd] blocks).
struct BackwardTask {
  std::int64_t b, kvh, chunk;
  std::int64_t tile_begin, tile_end;
  std::int64_t key_begin, key_end;
  std::int64_t partial_offset;
  double work;  // key tiles visited, for ordering
};

struct BackwardPlan {
  std::int64_t chunks = 1;          // per (batch, kv head)
  std::vector<BackwardTask> tasks;  // index (b * n_kv_heads + kvh) * chunks + chunk
  std::vector<std::int64_t> order;  // tasks by decreasing work (a deterministic tie-break)
  std::int64_t partial_elements = 0;
};

BackwardPlan plan_backward(const Dims& d, const AttentionMask& mask) {
  BackwardPlan plan;
  const std::int64_t n_tiles = (d.seq_len + kTile - 1) / kTile;
  const std::int64_t pairs = d.batch * d.n_kv_heads;
  if (pairs < kMinBackwardTasks && n_tiles > 1) {
    plan.chunks = std::min(n_tiles, (kMinBackwardTasks + pairs - 1) / pairs);
  }
  std::vector<std::int64_t> key_begin(static_cast<std::size_t>(n_tiles));
  std::vector<double> cum(static_cast<std::size_t>(n_tiles) + 1);
  for (std::int64_t b = 0; b < d.batch; ++b) {
    const std::int32_t* doc_row = mask.doc_start == nullptr ? nullptr : mask.doc_start + b * d.seq_len;
    // Work of a query tile ~ the key tiles it visits; chunk boundaries split the cumulative work evenly.
    cum[0] = 0.0;
    for (std::int64_t t = 0; t < n_tiles; ++t) {
      const std::int64_t i0 = t * kTile, i1 = std::min(d.seq_len, i0 + kTile);
      key_begin[static_cast<std::size_t>(t)] = plan.chunks > 1 ? tile_key_begin(d, doc_row, i0) : 0;
      const std::int64_t keys = std::max<std::int64_t>(0, tile_key_end(d, i1) - key_begin[static_cast<std::size_t>(t)]);
      const double tiles = static_cast<double>((keys + kTile - 1) / kTile);
      cum[static_cast<std::size_t>(t) + 1] = cum[static_cast<std::size_t>(t)] + tiles;
    }
    std::vector<std::int64_t> bounds{0};
    for (std::int64_t c = 1; c < plan.chunks; ++c) {
      const double target = cum.back() * static_cast<double>(c) / static_cast<double>(plan.chunks);
      std::int64_t t = bounds.back() + 1;  // every chunk holds at least one tile
      while (t < n_tiles - (plan.chunks - c) && cum[static_cast<std::size_t>(t)] < target) ++t;
      bounds.push_back(t);
    }
    bounds.push_back(n_tiles);
    for (std::int64_t g = 0; g < d.n_kv_heads; ++g) {
      for (std::int64_t c = 0; c < plan.chunks; ++c) {
        BackwardTask task{};
        task.b = b;
        task.kvh = g;
        task.chunk = c;
        task.tile_begin = bounds[static_cast<std::size_t>(c)];
        task.tile_end = bounds[static_cast<std::size_t>(c) + 1];
        task.key_end = tile_key_end(d, std::min(d.seq_len, task.tile_end * kTile));
        task.key_begin = task.key_end;
        for (std::int64_t t = task.tile_begin; t < task.tile_end; ++t) {
          task.key_begin = std::min(task.key_begin, key_begin[static_cast<std::size_t>(t)]);
        }
        task.work = (cum[static_cast<std::size_t>(task.tile_end)] - cum[static_cast<std::size_t>(task.tile_begin)]) *
                    static_cast<double>(d.group);
        if (c > 0) {
          task.partial_offset = plan.partial_elements;
          plan.partial_elements += 2 * (task.key_end - task.key_begin) * d.head_dim;
        }
        plan.tasks.push_back(task);
      }
    }
  }
  plan.order.resize(plan.tasks.size());
  std::iota(plan.order.begin(), plan.order.end(), std::int64_t{0});
  std::stable_sort(plan.order.begin(), plan.order.end(), [&](std::int64_t a, std::int64_t b) {
    return plan.tasks[static_cast<std::size_t>(a)].work > plan.tasks[static_cast<std::size_t>(b)].work;
  });
  return plan;
}

// The inputs in the layouts the tile kernels read, built once per call by pack_inputs:
//   k, v  [B * n_kv_heads, Tk, hd]           each key tile one contiguous block (instead of 64 rows a page or
//                                            more apart in a fused QKV buffer)
//   qt    [B * n_heads, n_tiles, hd, kTile]  (Q * scale)^T per query tile, zero past T: the B operand of S^T
//   dot   [B * n_heads, n_tiles, hd, kTile]  dO^T per query tile (backward)
//   dsum  [B * n_heads, T]                   D = rowsum(dO o out), summed in double (backward)
template <typename T>
struct PackedInputs {
  std::int64_t n_tiles = 0;
  T* k = nullptr;
  T* v = nullptr;
  T* qt = nullptr;
  T* dot = nullptr;
  T* dsum = nullptr;
  T* end = nullptr;  // first element after the packed inputs (backward: dK/dV accumulators follow)
};

std::int64_t round16(std::int64_t n) { return (n + 15) / 16 * 16; }

// Elements of each packed block, in PackedInputs order.
struct PackSizes {
  std::int64_t kv, qt, dsum;
};
PackSizes pack_sizes(const Dims& d) {
  const std::int64_t n_tiles = (d.seq_len + kTile - 1) / kTile;
  return PackSizes{round16(d.batch * d.n_kv_heads * d.kv_len * d.head_dim),
                   round16(d.batch * d.n_heads * n_tiles * d.head_dim * kTile),
                   round16(d.batch * d.n_heads * d.seq_len)};
}

template <typename T>
PackedInputs<T> packed_layout(T* ws, const Dims& d, bool backward) {
  const PackSizes s = pack_sizes(d);
  PackedInputs<T> p;
  p.n_tiles = (d.seq_len + kTile - 1) / kTile;
  p.k = ws;
  p.v = p.k + s.kv;
  p.qt = p.v + s.kv;
  p.end = p.qt + s.qt;
  if (backward) {
    p.dot = p.end;
    p.dsum = p.dot + s.qt;
    p.end = p.dsum + s.dsum;
  }
  return p;
}

std::int64_t forward_workspace_elements(const Dims& d) {
  const PackSizes s = pack_sizes(d);
  return 2 * s.kv + s.qt;
}

// Packed inputs, then dK and dV of chunk 0 ([B * n_kv_heads, Tk, hd] each), then the partials.
std::int64_t backward_workspace_elements(const Dims& d, std::int64_t partial_elements) {
  const PackSizes s = pack_sizes(d);
  return 2 * s.kv + 2 * s.qt + s.dsum + 2 * d.batch * d.n_kv_heads * d.kv_len * d.head_dim + partial_elements;
}

// Fills the packed inputs (dout and out null: forward only). Called inside a parallel region (or by one thread):
// the loop is shared among the team, and its implicit barrier publishes the result. Each token row is read
// whole (contiguous) and scattered into the per-head blocks, which stay in cache while a tile is filled.
// dst[c * kTile + r] = src_r[c] * scale for rows r < nq (src_r = src + r * stride) and c < hd; zero for
// nq <= r < kTile. Rows are taken eight at a time, so that each store writes eight consecutive columns of the
// transposed block while the eight source rows sit in L1.
template <typename T>
void transpose_rows(T* __restrict dst, const T* __restrict src, std::int64_t stride, std::int64_t nq, std::int64_t hd,
                    T scale) {
  constexpr std::int64_t kGroup = 8;
  std::int64_t r0 = 0;
  for (; r0 + kGroup <= nq; r0 += kGroup) {
    for (std::int64_t c = 0; c < hd; ++c) {
      T* d = dst + c * kTile + r0;
      for (std::int64_t r = 0; r < kGroup; ++r) d[r] = src[(r0 + r) * stride + c] * scale;
    }
  }
  for (std::int64_t c = 0; c < hd; ++c) {
    T* d = dst + c * kTile;
    for (std::int64_t r = r0; r < nq; ++r) d[r] = src[r * stride + c] * scale;
    for (std::int64_t r = nq; r < kTile; ++r) d[r] = T(0);
  }
}

template <typename T>
void pack_inputs(const PackedInputs<T>& p, const Dims& d, const T* q, const T* k, const T* v, const T* dout,
                 const T* out) {
  const std::int64_t n = d.seq_len, nk = d.kv_len, hd = d.head_dim;
  const T scale = static_cast<T>(d.scale);
  // Tiles of 64 rows of the queries and of the keys (which may be more or fewer than the queries).
  const std::int64_t pack_tiles = std::max(p.n_tiles, (nk + kTile - 1) / kTile);
#pragma omp for collapse(2) schedule(static)
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t t = 0; t < pack_tiles; ++t) {
      const std::int64_t i0 = t * kTile, nq = std::clamp<std::int64_t>(n - i0, 0, kTile);
      for (std::int64_t h = 0; h < d.n_heads && nq > 0; ++h) {
        const std::int64_t tile = ((b * d.n_heads + h) * p.n_tiles + t) * hd * kTile;
        transpose_rows(p.qt + tile, q + (b * n + i0) * d.q_stride + h * hd, d.q_stride, nq, hd, scale);
        if (dout == nullptr) continue;
        const T* dsrc = dout + (b * n + i0) * d.out_stride + h * hd;
        transpose_rows(p.dot + tile, dsrc, d.out_stride, nq, hd, T(1));
        const T* osrc = out + (b * n + i0) * d.out_stride + h * hd;
        for (std::int64_t r = 0; r < nq; ++r) {
          double dsum = 0.0;
          for (std::int64_t c = 0; c < hd; ++c) {
            dsum += static_cast<double>(dsrc[r * d.out_stride + c]) * static_cast<double>(osrc[r * d.out_stride + c]);
          }
          p.dsum[(b * d.n_heads + h) * n + i0 + r] = static_cast<T>(dsum);
        }
      }
      const std::int64_t nkr = std::clamp<std::int64_t>(nk - i0, 0, kTile);
      for (std::int64_t g = 0; g < d.n_kv_heads && nkr > 0; ++g) {
        T* kd = p.k + ((b * d.n_kv_heads + g) * nk + i0) * hd;
        T* vd = p.v + ((b * d.n_kv_heads + g) * nk + i0) * hd;
        const T* ks = k + (b * nk + i0) * d.kv_stride + g * hd;
        const T* vs = v + (b * nk + i0) * d.kv_stride + g * hd;
        for (std::int64_t r = 0; r < nkr; ++r) {
          for (std::int64_t c = 0; c < hd; ++c) {
            kd[r * hd + c] = ks[r * d.kv_stride + c];
            vd[r * hd + c] = vs[r * d.kv_stride + c];
          }
        }
      }
    }
  }
}

// A per-thread buffer that only grows: the packed inputs and accumulators of one call, reused by the next (no
// allocation or page faults per call). It keeps the size of the largest call made from the thread.
template <typename T>
T* workspace(std::int64_t elements) {
  thread_local AlignedBuffer<T> buf;
  if (buf.size() < static_cast<std::size_t>(elements)) buf.resize(static_cast<std::size_t>(elements));
  return buf.data();
}

}  // namespace

// ---- the kernels, once per SIMD path (traits in simd/traits.hpp) -------------------------------------------

namespace attn_scalar {
namespace {
template <typename T>
using Traits = simd::ScalarTraits<T>;
#include "zebra/ops/simd/attention_kernels.inl"
}  // namespace
}  // namespace attn_scalar

ZEBRA_SIMD_BEGIN_AVX2
namespace attn_avx2 {
namespace {
using Traits = simd::Avx2Traits;
#include "zebra/ops/simd/attention_kernels.inl"
}  // namespace
}  // namespace attn_avx2

namespace attn_avx512_layout {
namespace {
using Traits = simd::Avx512LayoutOnAvx2Traits;
#include "zebra/ops/simd/attention_kernels.inl"
}  // namespace
}  // namespace attn_avx512_layout
ZEBRA_SIMD_END

ZEBRA_SIMD_BEGIN_AVX512
namespace attn_avx512 {
namespace {
using Traits = simd::Avx512Traits;
#include "zebra/ops/simd/attention_kernels.inl"
}  // namespace
}  // namespace attn_avx512
ZEBRA_SIMD_END

// ---- dispatch ----------------------------------------------------------------------------------------------

namespace {

template <typename T>
AttentionStats forward_dispatch(T* out, T* lse, const T* q, const T* k, const T* v, const Dims& d,
                                const AttentionMask& mask, AttentionKernel kernel) {
  const bool parallel = work_of(d) >= kParallelMinWork;
  T* ws = workspace<T>(forward_workspace_elements(d));
  if constexpr (std::is_same_v<T, float>) {
    switch (kernel) {
      case AttentionKernel::kAvx512:
        return attn_avx512::forward_all<attn_avx512::Traits>(out, lse, q, k, v, d, mask, ws, parallel);
      case AttentionKernel::kAvx512OnAvx2:
        return attn_avx512_layout::forward_all<attn_avx512_layout::Traits>(out, lse, q, k, v, d, mask, ws, parallel);
      case AttentionKernel::kAvx2:
        return attn_avx2::forward_all<attn_avx2::Traits>(out, lse, q, k, v, d, mask, ws, parallel);
      default: break;
    }
  }
  return attn_scalar::forward_all<attn_scalar::Traits<T>>(out, lse, q, k, v, d, mask, ws, parallel);
}

template <typename T>
AttentionStats backward_dispatch(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                                 const T* v, const Dims& d, const AttentionMask& mask, AttentionKernel kernel) {
  const bool parallel = work_of(d) >= kParallelMinWork;
  const BackwardPlan plan = plan_backward(d, mask);
  T* ws = workspace<T>(backward_workspace_elements(d, plan.partial_elements));
  if constexpr (std::is_same_v<T, float>) {
    switch (kernel) {
      case AttentionKernel::kAvx512:
        return attn_avx512::backward_all<attn_avx512::Traits>(dq, dk, dv, dout, out, lse, q, k, v, d, mask, plan, ws,
                                                              parallel);
      case AttentionKernel::kAvx512OnAvx2:
        return attn_avx512_layout::backward_all<attn_avx512_layout::Traits>(dq, dk, dv, dout, out, lse, q, k, v, d,
                                                                            mask, plan, ws, parallel);
      case AttentionKernel::kAvx2:
        return attn_avx2::backward_all<attn_avx2::Traits>(dq, dk, dv, dout, out, lse, q, k, v, d, mask, plan, ws,
                                                          parallel);
      default: break;
    }
  }
  return attn_scalar::backward_all<attn_scalar::Traits<T>>(dq, dk, dv, dout, out, lse, q, k, v, d, mask, plan, ws,
                                                           parallel);
}

}  // namespace

AttentionKernel resolve_attention_kernel(const ComputeOptions& options) {
  switch (options.attention) {
    case AttentionKernel::kDefault:
      check_simd_path(options.simd, "attention");
      switch (options.simd) {
        case SimdPath::kAvx512: return AttentionKernel::kAvx512;
        case SimdPath::kAvx2: return AttentionKernel::kAvx2;
        case SimdPath::kScalar: return AttentionKernel::kScalar;
      }
      return AttentionKernel::kScalar;
    case AttentionKernel::kAvx512: check_simd_path(SimdPath::kAvx512, "attention kernel avx512"); break;
    case AttentionKernel::kAvx2:
    case AttentionKernel::kAvx512OnAvx2:
      check_simd_path(SimdPath::kAvx2, "attention kernel avx2 / avx512-layout-on-avx2");
      break;
    case AttentionKernel::kScalar: break;
  }
  return options.attention;
}

std::size_t attention_workspace_bytes(const AttentionShape& shape, const AttentionMask& mask) {
  const Dims d = resolve(shape, mask);
  return static_cast<std::size_t>(backward_workspace_elements(d, plan_backward(d, mask).partial_elements)) *
         sizeof(float);
}

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask, AttentionStats* stats, const ComputeOptions& options) {
  const Dims d = resolve(shape, mask);
  const AttentionKernel kernel = resolve_attention_kernel(options);
  const ThreadScope threads(options);
  const AttentionStats st = forward_dispatch(out, lse, q, k, v, d, mask, kernel);
  if (stats != nullptr) *stats = st;
}

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                       const AttentionMask& mask, const ComputeOptions& options) {
  attention_forward(out, lse, q, k, v, shape, mask, nullptr, options);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask, AttentionStats* stats,
                        const ComputeOptions& options) {
  const Dims d = resolve(shape, mask);
  const AttentionKernel kernel = resolve_attention_kernel(options);
  const ThreadScope threads(options);
  const AttentionStats st = backward_dispatch(dq, dk, dv, dout, out, lse, q, k, v, d, mask, kernel);
  if (stats != nullptr) *stats = st;
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& shape, const AttentionMask& mask,
                        const ComputeOptions& options) {
  attention_backward(dq, dk, dv, dout, out, lse, q, k, v, shape, mask, nullptr, options);
}

#define ZEBRA_ATTENTION_INSTANTIATE(T)                                                                        \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&,             \
                                     const AttentionMask&, const ComputeOptions&);                            \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&,             \
                                     const AttentionMask&, AttentionStats*, const ComputeOptions&);           \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, \
                                      const AttentionShape&, const AttentionMask&, const ComputeOptions&);    \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*, \
                                      const AttentionShape&, const AttentionMask&, AttentionStats*,           \
                                      const ComputeOptions&);
ZEBRA_ATTENTION_INSTANTIATE(float)
ZEBRA_ATTENTION_INSTANTIATE(double)
#undef ZEBRA_ATTENTION_INSTANTIATE

std::vector<double> alibi_slopes(std::int64_t n_heads) {
  ZEBRA_CHECK(n_heads > 0, "alibi_slopes: n_heads must be > 0, got ", n_heads);
  // p = the largest power of two <= n_heads. Its series 2^(-8/p * (i+1)), i < p, gives the first p slopes;
  // the remaining n_heads - p are the odd-indexed members 2^(-8/(2p) * (1, 3, 5, ...)) of the series for 2p,
  // which interleave with the first ones (BLOOM's choice; for a power of two nothing remains).
  std::int64_t p = 1;
  while (p * 2 <= n_heads) p *= 2;
  std::vector<double> slopes;
  slopes.reserve(static_cast<std::size_t>(n_heads));
  for (std::int64_t i = 0; i < p; ++i) {
    slopes.push_back(std::exp2(-8.0 * static_cast<double>(i + 1) / static_cast<double>(p)));
  }
  for (std::int64_t i = 0; i < n_heads - p; ++i) {
    slopes.push_back(std::exp2(-8.0 * static_cast<double>(2 * i + 1) / static_cast<double>(2 * p)));
  }
  return slopes;
}

double attention_visible_pairs(std::int64_t seq_len, std::int64_t window) {
  ZEBRA_CHECK(seq_len >= 0 && window >= 1, "attention_visible_pairs: need seq_len >= 0 and window >= 1, got ", seq_len,
              " and ", window);
  // sum_{i<T} min(i + 1, w): rows i < w see i + 1 keys, the remaining T - w rows see w each.
  const double t = static_cast<double>(seq_len);
  if (window >= seq_len) return t * (t + 1.0) / 2.0;
  const double w = static_cast<double>(window);
  return w * (w + 1.0) / 2.0 + (t - w) * w;
}

}  // namespace zebra
