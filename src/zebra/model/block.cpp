#include "zebra/model/block.hpp"

#include "zebra/ops/embedding.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/ops/weight_matmul.hpp"

namespace zebra {

namespace {

// y[n] += x[n]
template <typename T>
void add_inplace(T* y, const T* x, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (worth_parallel(n))
  for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// out[N, sum of rows] = inp . [A; B; C]^T: one product when the matrices are one (fused), else one per part
// into its column slice.
template <typename T>
void project(T* out, const T* inp, std::int64_t n, const WeightMatrix& fused,
             std::initializer_list<const WeightMatrix*> parts, const MatmulOptions& mo) {
  std::int64_t width = 0;
  for (const WeightMatrix* p : parts) width += p->rows;
  if (fused.rows > 0) {
    weight_matmul(out, width, inp, n, fused, mo);
    return;
  }
  std::int64_t col = 0;
  for (const WeightMatrix* p : parts) {
    weight_matmul(out + col, width, inp, n, *p, mo);
    col += p->rows;
  }
}

}  // namespace

template <typename T>
void block_forward(const BlockContext<T>& ctx, const LayerWeightViews<T>& w, std::int64_t n, const T* x_in, T* x_out,
                   const BlockState<T>& s, const AttentionStep<T>& attention) {
  const ModelConfig& c = *ctx.config;
  const std::int64_t d = c.d_model, f = c.ffn_dim, qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
  const MatmulOptions& mo = ctx.matmul;
  StepTimes* t = ctx.times;

  {
    const TimedScope ts(time_slot(t, &StepTimes::norms));
    rmsnorm_forward(s.xn1, s.rstd1, x_in, w.attn_norm, n, d, c.norm_eps, mo);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::projections));
    project(s.qkv, s.xn1, n, w.wqkv, {&w.wq, &w.wk, &w.wv}, mo);  // [N, QKV]
  }
  if (c.pos_embedding == PosEmbedding::kRope) {
    const TimedScope ts(time_slot(t, &StepTimes::rope));
    rope_forward(s.qkv, ctx.positions, *ctx.rope, n, c.n_heads, qkv_dim);
    rope_forward(s.qkv + qd, ctx.positions, *ctx.rope, n, c.n_kv_heads, qkv_dim);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::attention));
    attention(s.qkv, s.att);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::projections));
    weight_matmul(s.h, d, s.att, n, w.wo, mo);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::elementwise));
    add_inplace(s.h, x_in, n * d);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::norms));
    rmsnorm_forward(s.xn2, s.rstd2, s.h, w.ffn_norm, n, d, c.norm_eps, mo);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::projections));
    project(s.gu, s.xn2, n, w.w_gate_up, {&w.w_gate, &w.w_up}, mo);  // [N, 2F] gate | up
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::elementwise));
    swiglu_forward(s.act, s.gu, n, f, mo);
  }
  {
    const TimedScope ts(time_slot(t, &StepTimes::projections));
    weight_matmul(x_out, d, s.act, n, w.w_down, mo);  // x_in is not read after h was formed
  }
  const TimedScope ts(time_slot(t, &StepTimes::elementwise));
  add_inplace(x_out, s.h, n * d);
}

template <typename T>
void block_backward(const BlockContext<T>& ctx, const LayerWeightViews<T>& w, const LayerWeights<T>& dw, std::int64_t n,
                    const T* x_in, const BlockState<T>& s, const BlockGradScratch<T>& g,
                    const AttentionBackwardStep<T>& attention) {
  const ModelConfig& c = *ctx.config;
  const std::int64_t d = c.d_model, f = c.ffn_dim, qd = c.q_dim(), kvd = c.kv_dim(), qkv_dim = qd + 2 * kvd;
  const MatmulOptions& mo = ctx.matmul;
  // Training keeps q|k|v and gate|up fused (the parameter layout stores them adjacent): one product each.
  const T* wqkv = dense_data<T>(w.wqkv);
  const T* wgu = dense_data<T>(w.w_gate_up);

  // MLP: x_out = h + Wdown . swiglu(Wgu . rms(h))
  matmul_backward(g.dact, dw.w_down, g.dx, s.act, dense_data<T>(w.w_down), n, f, d, mo);
  swiglu_backward(g.dgu, g.dact, s.gu, n, f, mo);
  matmul_backward(g.dxn, dw.w_gate, g.dgu, s.xn2, wgu, n, d, 2 * f, mo);
  rmsnorm_backward(g.dtmp, dw.ffn_norm, g.dxn, s.h, w.ffn_norm, s.rstd2, n, d, mo);
  add_inplace(g.dx, g.dtmp, n * d);  // dx is now d(loss)/d(h)

  // Attention: h = x_in + Wo . attn(rope(Wq x), rope(Wk x), Wv x), x = rms(x_in)
  matmul_backward(g.datt, dw.wo, g.dx, s.att, dense_data<T>(w.wo), n, qd, d, mo);
  attention(g.datt, s.qkv, s.att, g.dqkv);
  if (c.pos_embedding == PosEmbedding::kRope) {
    rope_backward(g.dqkv, ctx.positions, *ctx.rope, n, c.n_heads, qkv_dim);
    rope_backward(g.dqkv + qd, ctx.positions, *ctx.rope, n, c.n_kv_heads, qkv_dim);
  }
  matmul_backward(g.dxn, dw.wq, g.dqkv, s.xn1, wqkv, n, d, qkv_dim, mo);
  rmsnorm_backward(g.dtmp, dw.attn_norm, g.dxn, x_in, w.attn_norm, s.rstd1, n, d, mo);
  add_inplace(g.dx, g.dtmp, n * d);
}

template void block_forward<float>(const BlockContext<float>&, const LayerWeightViews<float>&, std::int64_t,
                                   const float*, float*, const BlockState<float>&, const AttentionStep<float>&);
template void block_forward<double>(const BlockContext<double>&, const LayerWeightViews<double>&, std::int64_t,
                                    const double*, double*, const BlockState<double>&, const AttentionStep<double>&);
template void block_backward<float>(const BlockContext<float>&, const LayerWeightViews<float>&,
                                    const LayerWeights<float>&, std::int64_t, const float*, const BlockState<float>&,
                                    const BlockGradScratch<float>&, const AttentionBackwardStep<float>&);
template void block_backward<double>(const BlockContext<double>&, const LayerWeightViews<double>&,
                                     const LayerWeights<double>&, std::int64_t, const double*,
                                     const BlockState<double>&, const BlockGradScratch<double>&,
                                     const AttentionBackwardStep<double>&);

}  // namespace zebra
