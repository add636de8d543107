// The decoder block (DESIGN.md §1), written once for training and for cached inference:
//
//   xn1 = rms(x_in) * g1                    qkv = xn1 . [Wq; Wk; Wv]^T   [n, QKV], RoPE on q and k at `positions`
//   att = attention(q, k, v)                (the step: see AttentionStep)
//   h   = x_in + att . Wo^T
//   xn2 = rms(h) * g2                       gu  = xn2 . [Wgate; Wup]^T   [n, 2F]
//   act = silu(gate) * up                   x_out = h + act . Wdown^T
//
// over a block of n rows. Training passes all rows of a batch from position 0 (the step is the tiled kernel over
// whole sequences, which saves the log-sum-exp for backward); inference passes the new rows after n_past (the
// step attends to the KV cache and then appends the rows to it) — possibly rows of several sequences at once,
// whose products then run as one matrix product. block_backward mirrors block_forward.
//
// N = rows; QKV = (H + 2 Hkv) hd; F = ffn_dim. All row-major, rows contiguous.
#pragma once

#include <cstdint>
#include <functional>

#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/step_times.hpp"
#include "zebra/model/weights.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rope.hpp"

namespace zebra {

// The intermediates of one layer over N rows: what backward reads. Views into buffers the caller owns.
template <typename T>
struct BlockState {
  T* rstd1 = nullptr;  // [N]
  T* xn1 = nullptr;    // [N, D]     rms(x_in) * g1
  T* qkv = nullptr;    // [N, QKV]   q and k after RoPE
  T* att = nullptr;    // [N, H*hd]  attention output before Wo
  T* h = nullptr;      // [N, D]     residual after attention
  T* rstd2 = nullptr;  // [N]
  T* xn2 = nullptr;    // [N, D]
  T* gu = nullptr;     // [N, 2F]    gate | up
  T* act = nullptr;    // [N, F]     silu(gate) * up
};

// Gradient scratch of one layer (activation gradients overwrite, so one set serves every layer).
template <typename T>
struct BlockGradScratch {
  T* dx = nullptr;    // [N, D] in: d/d(x_out); out: d/d(x_in)
  T* dtmp = nullptr;  // [N, D]
  T* dxn = nullptr;   // [N, D]
  T* dqkv = nullptr;  // [N, QKV]
  T* datt = nullptr;  // [N, H*hd]
  T* dgu = nullptr;   // [N, 2F]
  T* dact = nullptr;  // [N, F]
};

// What every call of a layer shares.
template <typename T>
struct BlockContext {
  const ModelConfig* config = nullptr;
  const std::int32_t* positions = nullptr;  // [N] absolute positions of the rows
  const RopeTable<T>* rope = nullptr;       // for pos=rope: covers every position
  MatmulOptions matmul;
  StepTimes* times = nullptr;  // forward only: where the wall time of each op goes (null: not timed)
};

// Forward attention step: reads qkv [N, QKV] (q, k after RoPE), writes att [N, H*hd].
template <typename T>
using AttentionStep = std::function<void(const T* qkv, T* att)>;
// Backward attention step: reads datt [N, H*hd] and the forward's qkv / att; overwrites dqkv [N, QKV].
template <typename T>
using AttentionBackwardStep = std::function<void(const T* datt, const T* qkv, const T* att, T* dqkv)>;

// x_out [N, D] may alias x_in [N, D] (inference updates the residual stream in place).
template <typename T>
void block_forward(const BlockContext<T>& ctx, const LayerWeightViews<T>& w, std::int64_t n, const T* x_in, T* x_out,
                   const BlockState<T>& s, const AttentionStep<T>& attention);

// On entry g.dx holds d(loss)/d(x_out); on exit d(loss)/d(x_in). Parameter gradients accumulate (+=) into dw;
// the weights must be dense (training). s holds block_forward's intermediates for x_in.
template <typename T>
void block_backward(const BlockContext<T>& ctx, const LayerWeightViews<T>& w, const LayerWeights<T>& dw, std::int64_t n,
                    const T* x_in, const BlockState<T>& s, const BlockGradScratch<T>& g,
                    const AttentionBackwardStep<T>& attention);

}  // namespace zebra
