// Attention over a sequence split by position across processes (context parallelism). A process holds the rows
// [offset, offset + S) of sequences of `full_len` tokens (BatchView::position_offset, full_len); embedding,
// norms, MLPs and the loss run on those rows alone, and only attention needs other rows' keys and values. A
// Transformer given a ShardedAttention (Transformer::set_sharded_attention) calls it instead of the tiled kernel;
// the implementation over MPI is train/context_parallel.hpp. model/ knows nothing of how the keys travel.
#pragma once

#include <cstdint>

#include "zebra/ops/attention.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra {

template <typename T>
class ShardedAttention {
 public:
  virtual ~ShardedAttention() = default;
  // The contract of attention_forward / attention_backward (ops/attention.hpp) over this process's rows:
  //   q [B, S, H, hd] (row stride shape.q_stride), k, v [B, S, Hkv, hd] (shape.kv_stride), out [B, S, H*hd],
  //   lse [B, H, S]; shape.seq_len = S. mask.doc_start [B, S] holds absolute positions in the whole sequence.
  // The result equals the rows [offset, offset + S) of one call over the whole sequence; backward overwrites dq,
  // dk, dv of this process's rows with their whole gradient (contributions of every process's queries). Every
  // process of the group calls each layer in the same order.
  virtual void forward(std::int64_t layer, T* out, T* lse, const T* q, const T* k, const T* v,
                       const AttentionShape& shape, const AttentionMask& mask, const ComputeOptions& options) = 0;
  virtual void backward(std::int64_t layer, T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse, const T* q,
                        const T* k, const T* v, const AttentionShape& shape, const AttentionMask& mask,
                        const ComputeOptions& options) = 0;
};

}  // namespace zebra
