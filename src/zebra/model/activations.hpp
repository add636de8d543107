// Buffers a forward pass keeps for backward, and the scratch backward needs.
// N = B * T tokens; QKV = (H + 2 Hkv) * hd; F = ffn_dim.
#pragma once

#include <cstdint>
#include <vector>

#include "zebra/model/block.hpp"
#include "zebra/model/config.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

template <typename T>
struct LayerActivations {
  AlignedBuffer<T> rstd1;  // [N]
  AlignedBuffer<T> xn1;    // [N, D]     rms(x_in) * g
  AlignedBuffer<T> qkv;    // [N, QKV]   q and k after RoPE
  AlignedBuffer<T> att;    // [N, H*hd]  attention output before Wo
  AlignedBuffer<T> lse;    // [B, H, T]
  AlignedBuffer<T> h;      // [N, D]     residual after attention
  AlignedBuffer<T> rstd2;  // [N]
  AlignedBuffer<T> xn2;    // [N, D]
  AlignedBuffer<T> gu;     // [N, 2F]    gate | up
  AlignedBuffer<T> act;    // [N, F]     silu(gate) * up

  void allocate(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len);
  std::size_t bytes() const;
  BlockState<T> state() {
    return {rstd1.data(), xn1.data(), qkv.data(), att.data(), h.data(),
            rstd2.data(), xn2.data(), gu.data(),  act.data()};
  }
};

template <typename T>
struct Activations {
  std::int64_t batch = 0, seq_len = 0;
  bool one_set = false;
  // Residual stream at each layer input, and after the last layer: (n_layers + 1) x [N, D].
  std::vector<AlignedBuffer<T>> residual;
  // One set per layer, or a single scratch set (recomputation in backward, or a forward pass without backward).
  std::vector<LayerActivations<T>> layers;
  AlignedBuffer<T> rstd_final;            // [N]
  AlignedBuffer<T> xf;                    // [N, D] final-normed hidden states
  AlignedBuffer<std::int32_t> positions;  // [N]

  void allocate(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len, bool one_set);
  LayerActivations<T>& layer(std::int64_t l) { return layers[one_set ? 0 : static_cast<std::size_t>(l)]; }
  std::size_t bytes() const;
};

// Gradient scratch for backward (activation gradients overwrite, so one set serves every layer).
template <typename T>
struct BackwardScratch {
  AlignedBuffer<T> dx;    // [N, D] gradient of the residual stream
  AlignedBuffer<T> dtmp;  // [N, D]
  AlignedBuffer<T> dxn;   // [N, D]
  AlignedBuffer<T> dqkv;  // [N, QKV]
  AlignedBuffer<T> datt;  // [N, H*hd]
  AlignedBuffer<T> dgu;   // [N, 2F]
  AlignedBuffer<T> dact;  // [N, F]
  void allocate(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len);
  std::size_t bytes() const;
  BlockGradScratch<T> views() {
    return {dx.data(), dtmp.data(), dxn.data(), dqkv.data(), datt.data(), dgu.data(), dact.data()};
  }
};

}  // namespace zebra
