#include "zebra/model/activations.hpp"

namespace zebra {

namespace {
std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }
}  // namespace

template <typename T>
void LayerActivations<T>::allocate(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len) {
  const std::int64_t n = batch * seq_len, qkv_dim = c.q_dim() + 2 * c.kv_dim();
  rstd1.resize(sz(n));
  xn1.resize(sz(n * c.d_model));
  qkv.resize(sz(n * qkv_dim));
  att.resize(sz(n * c.q_dim()));
  lse.resize(sz(batch * c.n_heads * seq_len));
  h.resize(sz(n * c.d_model));
  rstd2.resize(sz(n));
  xn2.resize(sz(n * c.d_model));
  gu.resize(sz(n * 2 * c.ffn_dim));
  act.resize(sz(n * c.ffn_dim));
}

template <typename T>
std::size_t LayerActivations<T>::bytes() const {
  return (rstd1.size() + xn1.size() + qkv.size() + att.size() + lse.size() + h.size() + rstd2.size() + xn2.size() +
          gu.size() + act.size()) *
         sizeof(T);
}

template <typename T>
void Activations<T>::allocate(const ModelConfig& c, std::int64_t b, std::int64_t t, bool one) {
  if (b == batch && t == seq_len && one == one_set && !residual.empty()) return;
  batch = b;
  seq_len = t;
  one_set = one;
  const std::int64_t n = b * t;
  residual.assign(sz(c.n_layers + 1), AlignedBuffer<T>());
  for (auto& r : residual) r.resize(sz(n * c.d_model));
  layers.assign(one_set ? 1 : sz(c.n_layers), LayerActivations<T>());
  for (auto& l : layers) l.allocate(c, b, t);
  rstd_final.resize(sz(n));
  xf.resize(sz(n * c.d_model));
  positions.resize(sz(n));
}

template <typename T>
std::size_t Activations<T>::bytes() const {
  std::size_t total = (rstd_final.size() + xf.size()) * sizeof(T) + positions.size() * sizeof(std::int32_t);
  for (const auto& r : residual) total += r.size() * sizeof(T);
  for (const auto& l : layers) total += l.bytes();
  return total;
}

template <typename T>
void BackwardScratch<T>::allocate(const ModelConfig& c, std::int64_t batch, std::int64_t seq_len) {
  const std::int64_t n = batch * seq_len;
  if (dx.size() == sz(n * c.d_model)) return;
  dx.resize(sz(n * c.d_model));
  dtmp.resize(sz(n * c.d_model));
  dxn.resize(sz(n * c.d_model));
  dqkv.resize(sz(n * (c.q_dim() + 2 * c.kv_dim())));
  datt.resize(sz(n * c.q_dim()));
  dgu.resize(sz(n * 2 * c.ffn_dim));
  dact.resize(sz(n * c.ffn_dim));
}

template <typename T>
std::size_t BackwardScratch<T>::bytes() const {
  return (dx.size() + dtmp.size() + dxn.size() + dqkv.size() + datt.size() + dgu.size() + dact.size()) * sizeof(T);
}

template struct LayerActivations<float>;
template struct LayerActivations<double>;
template struct Activations<float>;
template struct Activations<double>;
template struct BackwardScratch<float>;
template struct BackwardScratch<double>;

}  // namespace zebra
