#include "zebra/model/transformer.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "zebra/ops/attention.hpp"
#include "zebra/ops/cross_entropy.hpp"
#include "zebra/ops/embedding.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

ModelConfig resolved(ModelConfig c) {
  c.resolve();
  return c;
}

}  // namespace

template <typename T>
Transformer<T>::Transformer(const ModelConfig& config, RunOptions options)
    : Transformer(ParameterSet<T>(resolved(config)), options) {}

template <typename T>
Transformer<T>::Transformer(ParameterSet<T> params, RunOptions options)
    : params_(std::make_unique<ParameterSet<T>>(std::move(params))), options_(options) {
  params_->config.resolve();
  weights_ = weights_of(*params_);
  if (config().pos_embedding == PosEmbedding::kAlibi) alibi_ = alibi_slopes(config().n_heads);
}

template <typename T>
Transformer<T>::Transformer(const ModelWeights<T>& weights, RunOptions options) : weights_(weights), options_(options) {
  ZEBRA_CHECK(static_cast<std::int64_t>(weights_.config.layer_types.size()) == weights_.config.n_layers,
              "Transformer: the weights' layer pattern is not resolved");
  if (config().pos_embedding == PosEmbedding::kAlibi) alibi_ = alibi_slopes(config().n_heads);
}

template <typename T>
ParameterSet<T>& Transformer<T>::params() {
  ZEBRA_CHECK(params_ != nullptr, "Transformer: this model runs over borrowed weights and has no parameters to train");
  return *params_;
}

template <typename T>
const ParameterSet<T>& Transformer<T>::params() const {
  ZEBRA_CHECK(params_ != nullptr, "Transformer: this model runs over borrowed weights and has no parameters to train");
  return *params_;
}

template <typename T>
AlignedBuffer<T>& Transformer<T>::grads() {
  ParameterSet<T>& p = params();
  if (grads_.size() != p.layout.total) {
    grads_ = AlignedBuffer<T>(p.layout.total);
    grads_.zero();
    grad_views_ = make_views(p.config, p.layout, grads_.data());
  }
  return grads_;
}

template <typename T>
const ParamViews<T>& Transformer<T>::grad_views() {
  grads();
  return grad_views_;
}

template <typename T>
const RopeTable<T>& Transformer<T>::rope_table(std::int64_t n_positions) {
  const RopeParams p = config().rope_params();
  // Dynamic NTK: the frequencies of a pass depend on its length (positions [0, n_positions)), as transformers
  // recomputes them per forward call; other kinds keep one table and only grow it.
  const std::int64_t basis = rope_table_basis(p, n_positions);
  if (rope_.n_positions < n_positions || rope_.basis != basis) {
    // Round up so that a sequence of slowly growing lengths does not rebuild the table each time.
    rope_ = make_rope_table<T>(p, std::max<std::int64_t>(n_positions, 2 * rope_.n_positions), basis);
  }
  return rope_;
}

template <typename T>
void Transformer<T>::prepare(const BatchView& batch, bool for_backward) {
  const ModelConfig& c = config();
  ZEBRA_CHECK(batch.batch >= 1 && batch.seq_len >= 1, "batch needs batch >= 1 and seq_len >= 1, got ", batch.batch,
              " x ", batch.seq_len);
  ZEBRA_CHECK(batch.tokens != nullptr, "batch has no tokens");
  ZEBRA_CHECK(batch.position_offset >= 0 && batch.position_offset + batch.seq_len <= batch.sequence_length(),
              "batch columns [", batch.position_offset, ", ", batch.position_offset + batch.seq_len,
              ") lie outside sequences of ", batch.sequence_length(), " tokens");
  ZEBRA_CHECK(batch.position_offset == 0 || sharded_ != nullptr,
              "a batch that is a slice of longer sequences (position_offset ", batch.position_offset,
              ") needs sharded attention");
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(batch.sequence_length() <= c.max_seq_len, "seq_len ", batch.sequence_length(),
                " exceeds the learned position table (max_seq_len ", c.max_seq_len, ")");
  }
  // Without backward (or with recomputation) one set of layer intermediates serves every layer.
  acts_.allocate(c, batch.batch, batch.seq_len, !for_backward || options_.recompute);
  if (for_backward) scratch_.allocate(c, batch.batch, batch.seq_len);
  for (std::int64_t b = 0; b < batch.batch; ++b)
    for (std::int64_t t = 0; t < batch.seq_len; ++t)
      acts_.positions[sz(b * batch.seq_len + t)] = static_cast<std::int32_t>(batch.position_offset + t);
  // The table of the whole sequence (dynamic NTK scales by its length, whichever slice this is).
  if (c.pos_embedding == PosEmbedding::kRope) rope_table(batch.sequence_length());
}

template <typename T>
BlockContext<T> Transformer<T>::block_context() const {
  return BlockContext<T>{&config(), acts_.positions.data(), &rope_, matmul_options()};
}

template <typename T>
void Transformer<T>::layer_forward(std::int64_t l, const BatchView& batch, const T* x_in, T* x_out,
                                   LayerActivations<T>& a) {
  const ModelConfig& c = config();
  const std::int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
  const AttentionShape shape{batch.batch, batch.seq_len, c.n_heads, c.n_kv_heads, c.head_dim, qkv_dim, qkv_dim};
  const AttentionMask mask{c.layer_window(l), batch.doc_start, alibi_.empty() ? nullptr : alibi_.data()};
  T* lse = a.lse.data();
  const AttentionStep<T> attention = [&](const T* qkv, T* att) {
    if (sharded_ != nullptr) {
      sharded_->forward(l, att, lse, qkv, qkv + qd, qkv + qd + kvd, shape, mask, options_.compute);
    } else {
      attention_forward(att, lse, qkv, qkv + qd, qkv + qd + kvd, shape, mask, options_.compute);
    }
  };
  block_forward(block_context(), weights_.layers[sz(l)], batch.batch * batch.seq_len, x_in, x_out, a.state(),
                attention);
}

// On entry scratch_.dx holds d(loss)/d(x_out); on exit d(loss)/d(x_in). Parameter gradients accumulate.
template <typename T>
void Transformer<T>::layer_backward(std::int64_t l, const BatchView& batch, const T* x_in, LayerActivations<T>& a) {
  const ModelConfig& c = config();
  const std::int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
  const AttentionShape shape{batch.batch, batch.seq_len, c.n_heads, c.n_kv_heads, c.head_dim, qkv_dim, qkv_dim};
  const AttentionMask mask{c.layer_window(l), batch.doc_start, alibi_.empty() ? nullptr : alibi_.data()};
  const T* lse = a.lse.data();
  const AttentionBackwardStep<T> attention = [&](const T* datt, const T* qkv, const T* att, T* dqkv) {
    if (sharded_ != nullptr) {
      sharded_->backward(l, dqkv, dqkv + qd, dqkv + qd + kvd, datt, att, lse, qkv, qkv + qd, qkv + qd + kvd, shape,
                         mask, options_.compute);
    } else {
      attention_backward(dqkv, dqkv + qd, dqkv + qd + kvd, datt, att, lse, qkv, qkv + qd, qkv + qd + kvd, shape, mask,
                         options_.compute);
    }
  };
  block_backward(block_context(), weights_.layers[sz(l)], grad_views_.layers[sz(l)], batch.batch * batch.seq_len, x_in,
                 a.state(), scratch_.views(), attention);
}

template <typename T>
void Transformer<T>::forward_hidden(const BatchView& batch, bool for_backward) {
  const ThreadScope threads(options_.compute);
  prepare(batch, for_backward);
  const ModelConfig& c = config();
  const std::int64_t n = batch.batch * batch.seq_len, d = c.d_model;
  T* x0 = acts_.residual[0].data();
  embedding_forward(x0, batch.tokens, weights_.embed, n);
  if (c.pos_embedding == PosEmbedding::kLearned) {
#pragma omp parallel for schedule(static) if (worth_parallel(n * d))
    for (std::int64_t r = 0; r < n; ++r) {
      const T* pe = weights_.pos_embed + static_cast<std::int64_t>(acts_.positions[sz(r)]) * d;
      for (std::int64_t i = 0; i < d; ++i) x0[r * d + i] += pe[i];
    }
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    layer_forward(l, batch, acts_.residual[sz(l)].data(), acts_.residual[sz(l + 1)].data(), acts_.layer(l));
  }
  rmsnorm_forward(acts_.xf.data(), acts_.rstd_final.data(), acts_.residual[sz(c.n_layers)].data(), weights_.final_norm,
                  n, d, c.norm_eps, options_.compute);
}

// The lm head and cross-entropy over chunks of `loss_chunk` rows; with backward, also writes
// d(loss)/d(xf) into scratch_.dtmp and accumulates the lm-head gradient.
template <typename T>
LossResult Transformer<T>::lm_head_loss(const BatchView& batch, bool backward, double grad_scale,
                                        std::int64_t mean_over) {
  const ModelConfig& c = config();
  const std::int64_t n = batch.batch * batch.seq_len, d = c.d_model, vocab = c.vocab_size;
  ZEBRA_CHECK(batch.targets != nullptr, "a loss needs targets");
  std::int64_t n_valid_total = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int32_t t = batch.targets[r];
    ZEBRA_CHECK(t < vocab, "target ", t, " at row ", r, " is outside the vocabulary of ", vocab);
    n_valid_total += t >= 0 ? 1 : 0;
  }
  const std::int64_t denom = mean_over > 0 ? mean_over : std::max<std::int64_t>(n_valid_total, 1);
  const T scale = static_cast<T>(grad_scale / static_cast<double>(denom));

  const std::int64_t chunk = std::max<std::int64_t>(1, options_.loss_chunk);
  logits_chunk_.resize(std::max(logits_chunk_.size(), sz(std::min(chunk, n) * vocab)));
  LossResult result;
  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, n - r0);
    const std::int32_t* targets = batch.targets + r0;
    const bool any_valid = std::any_of(targets, targets + rows, [](std::int32_t t) { return t >= 0; });
    if (!any_valid) {
      if (backward) std::fill(scratch_.dtmp.data() + r0 * d, scratch_.dtmp.data() + (r0 + rows) * d, T(0));
      continue;
    }
    T* logits = logits_chunk_.data();  // [rows, V]
    const T* xf = acts_.xf.data() + r0 * d;
    const MatmulOptions mo = matmul_options();
    weight_matmul(logits, vocab, xf, rows, weights_.lm_head, mo);
    result.loss_sum += cross_entropy_forward(logits, targets, rows, vocab, &result.n_valid);
    if (backward) {
      cross_entropy_backward(logits, logits, targets, rows, vocab, scale);
      matmul_backward(scratch_.dtmp.data() + r0 * d, grad_views_.lm_head, logits, xf, dense_data<T>(weights_.lm_head),
                      rows, d, vocab, mo);
    }
  }
  return result;
}

template <typename T>
LossResult Transformer<T>::forward_loss(const BatchView& batch) {
  forward_hidden(batch);
  const ThreadScope threads(options_.compute);
  return lm_head_loss(batch, false, 1.0, 0);
}

template <typename T>
LossResult Transformer<T>::forward_backward(const BatchView& batch, double grad_scale, std::int64_t mean_over) {
  grads();
  forward_hidden(batch, true);
  const ThreadScope threads(options_.compute);
  LossResult result = lm_head_loss(batch, true, grad_scale, mean_over);

  const ModelConfig& c = config();
  const std::int64_t n = batch.batch * batch.seq_len, d = c.d_model;
  rmsnorm_backward(scratch_.dx.data(), grad_views_.final_norm, scratch_.dtmp.data(),
                   acts_.residual[sz(c.n_layers)].data(), weights_.final_norm, acts_.rstd_final.data(), n, d);
  for (std::int64_t l = c.n_layers - 1; l >= 0; --l) {
    const T* x_in = acts_.residual[sz(l)].data();
    LayerActivations<T>& a = acts_.layer(l);
    if (acts_.one_set) {
      // Rebuild this layer's intermediates from its saved input. The output goes to a scratch
      // buffer: residual[l + 1] is already consumed, and writing it back would be bit-identical anyway.
      layer_forward(l, batch, x_in, scratch_.dxn.data(), a);
    }
    layer_backward(l, batch, x_in, a);
  }
  embedding_backward(grad_views_.embed, scratch_.dx.data(), batch.tokens, n, d);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    // Serial over rows: several batch rows share a position, so a parallel scatter would race.
    for (std::int64_t r = 0; r < n; ++r) {
      T* dpe = grad_views_.pos_embed + static_cast<std::int64_t>(acts_.positions[sz(r)]) * d;
      const T* dx = scratch_.dx.data() + r * d;
      for (std::int64_t i = 0; i < d; ++i) dpe[i] += dx[i];
    }
  }
  return result;
}

template <typename T>
void Transformer<T>::logits_for_row(std::int64_t row, T* out) const {
  const ModelConfig& c = config();
  weight_matmul(out, c.vocab_size, acts_.xf.data() + row * c.d_model, 1, weights_.lm_head);
}

template <typename T>
std::size_t Transformer<T>::activation_bytes(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len,
                                             bool recompute) {
  RunOptions o;
  o.recompute = recompute;
  return activation_bytes(c, batch, seq_len, o);
}

template <typename T>
std::size_t Transformer<T>::activation_bytes(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len,
                                             const RunOptions& options) {
  const std::size_t n = sz(batch * seq_len), d = sz(c.d_model), f = sz(c.ffn_dim);
  const std::size_t qd = sz(c.q_dim()), qkv = qd + 2 * sz(c.kv_dim()), h = sz(c.n_heads);
  const std::size_t per_layer = n * (2 + 3 * d + qkv + qd + h + 3 * f);
  const std::size_t n_sets = options.recompute ? 1 : sz(c.n_layers);
  const std::size_t acts = sz(c.n_layers + 1) * n * d + n_sets * per_layer + n + n * d;
  const std::size_t scratch = n * (3 * d + qkv + qd + 3 * f);
  const std::size_t logits =
      std::min<std::size_t>(n, sz(std::max<std::int64_t>(1, options.loss_chunk))) * sz(c.vocab_size);
  // RoPE table: cos and sin for [seq_len, head_dim / 2] (built for at least seq_len positions).
  const std::size_t rope = c.pos_embedding == PosEmbedding::kRope ? 2 * sz(seq_len) * sz(c.head_dim / 2) : 0;
  // The attention kernels' per-thread workspace, sized by the largest call (a global layer's backward).
  const AttentionShape shape{batch, seq_len, c.n_heads, c.n_kv_heads, c.head_dim, 0, 0};
  const std::size_t attention =
      attention_workspace_bytes(shape, AttentionMask{kGlobalWindow, nullptr, nullptr}) / sizeof(float);
  // BF16 products: rounded copies of a weight and of a chunk of rows (the largest product's).
  std::size_t bf16 = 0;
  if (options.bf16_matmul && std::is_same_v<T, float>) {
    const std::int64_t N = batch * seq_len;
    const std::int64_t shapes[][2] = {{c.d_model, c.q_dim() + 2 * c.kv_dim()},
                                      {c.q_dim(), c.d_model},
                                      {c.d_model, 2 * c.ffn_dim},
                                      {c.ffn_dim, c.d_model},
                                      {c.d_model, c.vocab_size}};
    for (const auto& io : shapes) {
      bf16 = std::max(bf16, sz(bf16_scratch_bytes(N, io[0], io[1])) / sizeof(float));
    }
  }
  return (acts + scratch + logits + rope + attention + bf16) * sizeof(T) + n * sizeof(std::int32_t);
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace zebra
