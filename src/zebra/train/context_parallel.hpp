// Context parallelism: one batch of sequences of T tokens split by position across the R ranks of a
// Communicator, rank r holding positions [r S, (r + 1) S) with S = T / R (model/sharded_attention.hpp). The
// embedding, norms, MLPs and loss stay on each rank's rows; attention exchanges only what each layer needs:
//
// - Local layer (window w): rank r needs the keys and values of positions [r S - H_r, r S), H_r = min(w - 1, r S)
//   (a halo, from the previous rank, or several when w - 1 > S). Forward sends those rows to their users and runs
//   the kernel over [halo | own] keys (AttentionShape::q_pos = H_r). Backward exchanges the halo again, then
//   returns the halo rows' dK, dV to their owners, which add them in rank order. Bytes per rank and layer:
//   O(w · kv_dim), whatever T is.
// - Global layer: a causal pipeline. Rank r needs the blocks of ranks 0..r; block p travels p -> p+1 -> ... -> R-1
//   (each rank forwards what it received, while computing on it). Each block gives partial (out, lse) that are
//   merged by their log-sum-exp, in the fixed order r, r-1, ..., 0. Backward sends the blocks down the same
//   pipeline with their dK, dV accumulators: each rank adds its queries' contribution and forwards; the last rank
//   returns every accumulator to its owner. Bytes per rank and layer: O(T · kv_dim).
//
// Every sum runs in a fixed order, so results do not depend on timing. Bytes sent per layer are counted
// (traffic()) and the formulas below state what they must be.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "zebra/data/batcher.hpp"
#include "zebra/model/batch.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/sharded_attention.hpp"
#include "zebra/train/communicator.hpp"

namespace zebra {

// Bytes a rank sent for one layer, forward and backward.
struct LayerTraffic {
  std::int64_t forward_bytes = 0;
  std::int64_t backward_bytes = 0;
};

template <typename T>
class ContextParallelAttention final : public ShardedAttention<T> {
 public:
  // comm must outlive this object. A call's rows are rank r's slice [r S, (r + 1) S) of sequences of R S tokens,
  // S = shape.seq_len (a run that mixes long and short sequences splits each).
  ContextParallelAttention(Communicator& comm, std::int64_t n_layers);

  // The bytes of buffers the largest call over B sequences of S rows per rank holds (for the memory plan).
  static std::size_t scratch_bytes(const ModelConfig& config, std::int64_t batch, std::int64_t slice);

  void forward(std::int64_t layer, T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
               const AttentionMask& mask, const ComputeOptions& options) override;
  void backward(std::int64_t layer, T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q,
                const T* k, const T* v, const AttentionShape& shape, const AttentionMask& mask,
                const ComputeOptions& options) override;

  // Bytes this rank sent, per layer, accumulated since construction or reset_traffic().
  const std::vector<LayerTraffic>& traffic() const { return traffic_; }
  void reset_traffic();

 private:
  void local_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                     const AttentionMask& mask, const ComputeOptions& options);
  void local_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                      const T* v, const AttentionShape& shape, const AttentionMask& mask,
                      const ComputeOptions& options);
  void global_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionShape& shape,
                      const AttentionMask& mask, const ComputeOptions& options);
  void global_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q, const T* k,
                       const T* v, const AttentionShape& shape, const AttentionMask& mask,
                       const ComputeOptions& options);
  // Fills halo_ ([B, H + S, kv_dim] keys, then values) with the halo rows of earlier ranks and this rank's own.
  std::int64_t exchange_halo(const T* k, const T* v, const AttentionShape& shape, std::int64_t window);
  std::int64_t offset(const AttentionShape& shape) const { return shape.seq_len * comm_->rank(); }

  Communicator* comm_;
  std::vector<LayerTraffic> traffic_;
  std::vector<T> halo_k_, halo_v_, block_a_, block_b_, part_out_, part_lse_, grad_a_, grad_b_;
  std::vector<std::int32_t> doc_;
};

// The bytes rank `rank` of `ranks` sends for one layer of window `window` (kGlobalWindow: a global layer) over
// `batch` sequences of ranks * slice tokens, kv_dim key (and as many value) elements per token of sizeof(T) =
// elem_bytes: the formula context_parallel.cpp realises, for the tests and the docs.
LayerTraffic context_parallel_traffic(std::int64_t window, int rank, int ranks, std::int64_t slice, std::int64_t batch,
                                      std::int64_t kv_dim, std::int64_t elem_bytes);

// The columns [rank S, (rank + 1) S) of a batch of whole sequences (S = seq_len / ranks): tokens, targets and
// document starts (absolute positions) copied into `slice`, and its view with position_offset and full_len set.
BatchView slice_columns(const Batch& whole, int rank, int ranks, bool doc_mask, Batch& slice);

}  // namespace zebra
