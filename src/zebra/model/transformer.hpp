// The Zebra decoder over whole sequences: forward, loss and backward (training and evaluation). Each layer is
// model/block.hpp's block with the tiled attention kernel as its attention step; generation with a KV cache
// (model/generator.hpp) runs the same block over new rows.
//
// A Transformer either owns dense parameters (training: constructed from a config or a ParameterSet) or
// borrows typed weights (evaluation: constructed from a ModelWeights, which must outlive it; no copy of the
// weights is made). Gradients are allocated by the first forward_backward() or grads() call, never for a model
// that only runs forward.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "zebra/model/activations.hpp"
#include "zebra/model/batch.hpp"
#include "zebra/model/block.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/model/sharded_attention.hpp"
#include "zebra/model/weights.hpp"
#include "zebra/ops/compute.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

struct RunOptions {
  bool recompute = false;         // keep only each layer's input; recompute the layer in backward
  std::int64_t loss_chunk = 256;  // tokens per lm-head/cross-entropy chunk
  // Matrix products with bfloat16 inputs and fp32 accumulation (MatmulOptions::bf16; float models only).
  // Attention, norms and everything elementwise stay fp32. Effect on the loss: docs/performance.md.
  bool bf16_matmul = false;
  // Threads, GEMM backend, SIMD path and attention kernel of every op this model runs (its bf16 member is
  // replaced by bf16_matmul).
  ComputeOptions compute{};
};

struct LossResult {
  double loss_sum = 0.0;     // sum of -log p over valid targets
  std::int64_t n_valid = 0;  // number of valid targets
  double mean() const { return n_valid > 0 ? loss_sum / static_cast<double>(n_valid) : 0.0; }
};

template <typename T>
class Transformer {
 public:
  // Owns fresh (zero) parameters of `config`, or the given ones.
  explicit Transformer(const ModelConfig& config, RunOptions options = {});
  explicit Transformer(ParameterSet<T> params, RunOptions options = {});
  // Forward only, over borrowed weights of any dtype the products support.
  explicit Transformer(const ModelWeights<T>& weights, RunOptions options = {});
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;
  // Moves keep every buffer (the views point into heap storage that moves along).
  Transformer(Transformer&&) noexcept = default;
  Transformer& operator=(Transformer&&) noexcept = default;

  const ModelConfig& config() const { return weights_.config; }
  const ModelWeights<T>& weights() const { return weights_; }
  bool owns_parameters() const { return params_ != nullptr; }
  bool has_gradients() const { return grads_.size() > 0; }
  // The dense parameters (throws for a forward-only model over borrowed weights).
  ParameterSet<T>& params();
  const ParameterSet<T>& params() const;
  // Gradients: same layout as params().data (allocated on first use).
  AlignedBuffer<T>& grads();
  const ParamViews<T>& grad_views();
  void zero_grads() { grads().zero(); }
  RunOptions& options() { return options_; }
  // Attention through `a` (a sequence split across processes; not owned, must outlive its use), or through the
  // tiled kernel when null. Batches are then slices (BatchView::position_offset).
  void set_sharded_attention(ShardedAttention<T>* a) { sharded_ = a; }

  // Loss of a batch with targets, no gradients.
  LossResult forward_loss(const BatchView& batch);
  // Loss and gradients: grads += grad_scale * d(sum of losses)/d(params) / n_valid_for_mean, where
  // the mean is taken over `mean_over` targets (0 = this batch's valid targets).
  LossResult forward_backward(const BatchView& batch, double grad_scale = 1.0, std::int64_t mean_over = 0);
  // Final hidden states after the final norm: valid after forward_hidden(), [B*T, D].
  void forward_hidden(const BatchView& batch) { forward_hidden(batch, false); }
  const T* final_hidden() const { return acts_.xf.data(); }
  // Residual stream entering layer l (l = n_layers: after the last layer), [B*T, D], after a forward.
  const T* residual(std::int64_t l) const { return acts_.residual[static_cast<std::size_t>(l)].data(); }
  // Logits for one row of the last forward_hidden(): out[V].
  void logits_for_row(std::int64_t row, T* out) const;

  // Bytes of activations and backward scratch for a batch shape (for the memory plan): saved activations, the
  // backward's gradient buffers, one lm-head chunk of logits, the RoPE table, the attention kernels' workspace
  // and, with bf16_matmul, the rounding scratch. Parameters, gradients and optimizer moments are not included.
  static std::size_t activation_bytes(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len, bool recompute);
  static std::size_t activation_bytes(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len,
                                      const RunOptions& options);

 private:
  // How every matrix product of this model runs (RunOptions::bf16_matmul).
  ComputeOptions matmul_options() const {
    ComputeOptions o = options_.compute;
    o.bf16 = options_.bf16_matmul;
    return o;
  }
  BlockContext<T> block_context() const;
  void forward_hidden(const BatchView& batch, bool for_backward);
  void prepare(const BatchView& batch, bool for_backward);
  void layer_forward(std::int64_t l, const BatchView& batch, const T* x_in, T* x_out, LayerActivations<T>& a);
  void layer_backward(std::int64_t l, const BatchView& batch, const T* x_in, LayerActivations<T>& a);
  LossResult lm_head_loss(const BatchView& batch, bool backward, double grad_scale, std::int64_t mean_over);
  const RopeTable<T>& rope_table(std::int64_t n_positions);

  std::unique_ptr<ParameterSet<T>> params_;  // owned dense parameters, or null (borrowed weights)
  ModelWeights<T> weights_;                  // views of *params_ or of borrowed storage
  AlignedBuffer<T> grads_;
  ParamViews<T> grad_views_;
  RunOptions options_;
  Activations<T> acts_;
  BackwardScratch<T> scratch_;
  AlignedBuffer<T> logits_chunk_;  // [chunk, V]
  RopeTable<T> rope_;
  std::vector<double> alibi_;
  ShardedAttention<T>* sharded_ = nullptr;
};

}  // namespace zebra
