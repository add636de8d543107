#include "zebra/train/context_parallel.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "zebra/ops/mask.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Message tags, one per kind of exchange (MPI keeps the order of one tag's messages between two ranks).
constexpr int kTagHalo = 201;       // halo keys and values
constexpr int kTagHaloGrad = 202;   // halo dK, dV back to their owners
constexpr int kTagBlock = 203;      // a global layer's block of keys and values, forward
constexpr int kTagBlockGrad = 204;  // the same with its dK, dV accumulators, backward
constexpr int kTagFinal = 205;      // a block's finished dK, dV, from the last rank to the block's owner

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

struct Geometry {
  std::int64_t B, S, H, Hkv, hd, kvw, qs, kvs, qw;
};

Geometry geometry_of(const AttentionShape& s) {
  ZEBRA_CHECK(s.seq_len >= 1, "context parallel: a rank's slice needs at least one position");
  ZEBRA_CHECK(s.kv_len == 0 && s.q_pos == 0, "context parallel: the model passes its own rows only");
  Geometry g{};
  g.B = s.batch;
  g.S = s.seq_len;
  g.H = s.n_heads;
  g.Hkv = s.n_kv_heads;
  g.hd = s.head_dim;
  g.kvw = s.n_kv_heads * s.head_dim;
  g.qw = s.n_heads * s.head_dim;
  g.qs = s.q_stride == 0 ? g.qw : s.q_stride;
  g.kvs = s.kv_stride == 0 ? g.kvw : s.kv_stride;
  return g;
}

// Rows [lo, hi) (absolute positions) of rank `owner`'s k and v (strided, [B, S, *]) packed as [B, rows, kvw] keys
// then values.
template <typename T>
void pack_rows(std::vector<T>& dst, const T* k, const T* v, const Geometry& g, std::int64_t owner_start,
               std::int64_t lo, std::int64_t hi) {
  const std::int64_t rows = hi - lo;
  dst.resize(sz(2 * g.B * rows * g.kvw));
  for (std::int64_t b = 0; b < g.B; ++b) {
    for (std::int64_t t = 0; t < rows; ++t) {
      const std::int64_t src = (b * g.S + lo - owner_start + t) * g.kvs;
      T* kd = dst.data() + (b * rows + t) * g.kvw;
      T* vd = kd + g.B * rows * g.kvw;
      std::copy(k + src, k + src + g.kvw, kd);
      std::copy(v + src, v + src + g.kvw, vd);
    }
  }
}

// doc_start (absolute, [B, S]) in the coordinates of keys that begin at position `key_start`; a document that
// began before the keys starts at 0.
void shift_doc(std::vector<std::int32_t>& dst, const std::int32_t* doc, std::int64_t n, std::int64_t key_start) {
  dst.resize(sz(n));
  for (std::int64_t i = 0; i < n; ++i) {
    dst[sz(i)] = static_cast<std::int32_t>(std::max<std::int64_t>(0, doc[i] - key_start));
  }
}

// Halo rows rank `user` needs: [user S - H, user S) with H = min(window - 1, user S).
std::int64_t halo_rows(std::int64_t window, std::int64_t user, std::int64_t S) {
  return std::min(window - 1, user * S);
}

// Rows of rank `owner`'s slice inside rank `user`'s halo, as [lo, hi) (absolute; empty when lo >= hi).
std::pair<std::int64_t, std::int64_t> halo_overlap(std::int64_t window, std::int64_t user, std::int64_t owner,
                                                   std::int64_t S) {
  const std::int64_t start = user * S - halo_rows(window, user, S);
  return {std::max(start, owner * S), std::min(user * S, (owner + 1) * S)};
}

}  // namespace

template <typename T>
ContextParallelAttention<T>::ContextParallelAttention(Communicator& comm, std::int64_t n_layers)
    : comm_(&comm), traffic_(sz(n_layers)) {}

template <typename T>
std::size_t ContextParallelAttention<T>::scratch_bytes(const ModelConfig& c, std::int64_t batch, std::int64_t slice) {
  const std::int64_t rows = batch * slice, kvw = c.kv_dim(), qs = c.q_dim() + 2 * kvw;
  // A global layer's backward holds two messages of 4 blocks (keys, values, dK, dV), a contribution and the
  // finished gradients of 2 blocks each, one block's dq and lse: rows (12 kv_dim + qkv width) + lse. A local
  // layer's [halo | own] keys, values and their gradients take 4 (halo + S) kv_dim per sequence, within the
  // same total while window - 1 <= 2 S.
  const std::int64_t elements = rows * (12 * kvw + qs) + batch * c.n_heads * slice;
  return static_cast<std::size_t>(elements) * sizeof(T);
}

template <typename T>
void ContextParallelAttention<T>::reset_traffic() {
  std::fill(traffic_.begin(), traffic_.end(), LayerTraffic{});
}

template <typename T>
void ContextParallelAttention<T>::forward(std::int64_t layer, T* out, T* lse, const T* q, const T* k, const T* v,
                                          const AttentionShape& shape, const AttentionMask& mask,
                                          const ComputeOptions& options) {
  const std::int64_t before = comm_->bytes_sent();
  if (mask.window == kGlobalWindow) {
    global_forward(out, lse, q, k, v, shape, mask, options);
  } else {
    local_forward(out, lse, q, k, v, shape, mask, options);
  }
  traffic_.at(sz(layer)).forward_bytes += comm_->bytes_sent() - before;
}

template <typename T>
void ContextParallelAttention<T>::backward(std::int64_t layer, T* dq, T* dk, T* dv, const T* dout, const T* out,
                                           const T* lse, const T* q, const T* k, const T* v,
                                           const AttentionShape& shape, const AttentionMask& mask,
                                           const ComputeOptions& options) {
  const std::int64_t before = comm_->bytes_sent();
  if (mask.window == kGlobalWindow) {
    global_backward(dq, dk, dv, dout, out, lse, q, k, v, shape, mask, options);
  } else {
    local_backward(dq, dk, dv, dout, out, lse, q, k, v, shape, mask, options);
  }
  traffic_.at(sz(layer)).backward_bytes += comm_->bytes_sent() - before;
}

// ---- local layers: the halo -----------------------------------------------------------------------------------

template <typename T>
std::int64_t ContextParallelAttention<T>::exchange_halo(const T* k, const T* v, const AttentionShape& shape,
                                                        std::int64_t window) {
  const Geometry g = geometry_of(shape);
  const int R = comm_->size(), me = comm_->rank();
  const std::int64_t S = g.S, halo = halo_rows(window, me, S), start = me * S - halo;
  // Sends: to every later rank whose halo reaches into this slice.
  std::vector<std::vector<T>> sends;
  for (int user = me + 1; user < R; ++user) {
    const auto [lo, hi] = halo_overlap(window, user, me, S);
    if (lo >= hi) continue;
    sends.emplace_back();
    pack_rows(sends.back(), k, v, g, me * S, lo, hi);
    comm_->isend(sends.back().data(), sends.back().size() * sizeof(T), user, kTagHalo);
  }
  // Receives: every earlier rank's part of this rank's halo.
  std::vector<std::vector<T>> recvs;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  for (int owner = 0; owner < me; ++owner) {
    const auto [lo, hi] = halo_overlap(window, me, owner, S);
    if (lo >= hi) continue;
    recvs.emplace_back(sz(2 * g.B * (hi - lo) * g.kvw));
    ranges.emplace_back(lo, hi);
    comm_->irecv(recvs.back().data(), recvs.back().size() * sizeof(T), owner, kTagHalo);
  }
  // [B, halo + S, kvw]: the halo rows, then this rank's own.
  const std::int64_t rows = halo + S;
  halo_k_.resize(sz(g.B * rows * g.kvw));
  halo_v_.resize(halo_k_.size());
  for (std::int64_t b = 0; b < g.B; ++b) {
    for (std::int64_t t = 0; t < S; ++t) {
      const T* ks = k + (b * S + t) * g.kvs;
      const T* vs = v + (b * S + t) * g.kvs;
      std::copy(ks, ks + g.kvw, halo_k_.data() + (b * rows + halo + t) * g.kvw);
      std::copy(vs, vs + g.kvw, halo_v_.data() + (b * rows + halo + t) * g.kvw);
    }
  }
  comm_->wait_all();
  for (std::size_t i = 0; i < recvs.size(); ++i) {
    const auto [lo, hi] = ranges[i];
    const std::int64_t n = hi - lo;
    for (std::int64_t b = 0; b < g.B; ++b) {
      const T* kr = recvs[i].data() + b * n * g.kvw;
      const T* vr = kr + g.B * n * g.kvw;
      std::copy(kr, kr + n * g.kvw, halo_k_.data() + (b * rows + lo - start) * g.kvw);
      std::copy(vr, vr + n * g.kvw, halo_v_.data() + (b * rows + lo - start) * g.kvw);
    }
  }
  return halo;
}

template <typename T>
void ContextParallelAttention<T>::local_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                                                const AttentionShape& shape, const AttentionMask& mask,
                                                const ComputeOptions& options) {
  const Geometry g = geometry_of(shape);
  const std::int64_t halo = exchange_halo(k, v, shape, mask.window);
  const std::int64_t start = offset(shape) - halo;
  if (mask.doc_start != nullptr) shift_doc(doc_, mask.doc_start, g.B * g.S, start);
  const AttentionShape s{g.B, g.S, g.H, g.Hkv, g.hd, g.qs, g.kvw, halo + g.S, halo};
  const AttentionMask m{mask.window, mask.doc_start != nullptr ? doc_.data() : nullptr, mask.alibi_slopes};
  attention_forward(out, lse, q, halo_k_.data(), halo_v_.data(), s, m, options);
}

template <typename T>
void ContextParallelAttention<T>::local_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse,
                                                 const T* q, const T* k, const T* v, const AttentionShape& shape,
                                                 const AttentionMask& mask, const ComputeOptions& options) {
  const Geometry g = geometry_of(shape);
  const int R = comm_->size(), me = comm_->rank();
  const std::int64_t S = g.S, halo = exchange_halo(k, v, shape, mask.window), start = offset(shape) - halo;
  const std::int64_t rows = halo + S;
  if (mask.doc_start != nullptr) shift_doc(doc_, mask.doc_start, g.B * S, start);
  const AttentionShape s{g.B, S, g.H, g.Hkv, g.hd, g.qs, g.kvw, rows, halo};
  const AttentionMask m{mask.window, mask.doc_start != nullptr ? doc_.data() : nullptr, mask.alibi_slopes};
  // dK, dV of [halo | own] keys, [B, rows, kvw] each.
  grad_a_.resize(sz(g.B * rows * g.kvw));
  grad_b_.resize(grad_a_.size());
  attention_backward(dq, grad_a_.data(), grad_b_.data(), dout, out, lse, q, halo_k_.data(), halo_v_.data(), s, m,
                     options);
  // The halo rows' gradients go back to their owners; the later ranks' gradients of this slice's rows come in.
  std::vector<std::vector<T>> sends;
  for (int owner = 0; owner < me; ++owner) {
    const auto [lo, hi] = halo_overlap(mask.window, me, owner, S);
    if (lo >= hi) continue;
    const std::int64_t n = hi - lo;
    sends.emplace_back(sz(2 * g.B * n * g.kvw));
    for (std::int64_t b = 0; b < g.B; ++b) {
      const T* ks = grad_a_.data() + (b * rows + lo - start) * g.kvw;
      const T* vs = grad_b_.data() + (b * rows + lo - start) * g.kvw;
      std::copy(ks, ks + n * g.kvw, sends.back().data() + b * n * g.kvw);
      std::copy(vs, vs + n * g.kvw, sends.back().data() + (g.B + b) * n * g.kvw);
    }
    comm_->isend(sends.back().data(), sends.back().size() * sizeof(T), owner, kTagHaloGrad);
  }
  std::vector<std::vector<T>> recvs;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  for (int user = me + 1; user < R; ++user) {
    const auto [lo, hi] = halo_overlap(mask.window, user, me, S);
    if (lo >= hi) continue;
    recvs.emplace_back(sz(2 * g.B * (hi - lo) * g.kvw));
    ranges.emplace_back(lo, hi);
    comm_->irecv(recvs.back().data(), recvs.back().size() * sizeof(T), user, kTagHaloGrad);
  }
  comm_->wait_all();
  // Own rows: this rank's queries' part, then the later ranks' parts in rank order.
  for (std::int64_t b = 0; b < g.B; ++b) {
    for (std::int64_t t = 0; t < S; ++t) {
      const T* ks = grad_a_.data() + (b * rows + halo + t) * g.kvw;
      const T* vs = grad_b_.data() + (b * rows + halo + t) * g.kvw;
      std::copy(ks, ks + g.kvw, dk + (b * S + t) * g.kvs);
      std::copy(vs, vs + g.kvw, dv + (b * S + t) * g.kvs);
    }
  }
  for (std::size_t i = 0; i < recvs.size(); ++i) {
    const auto [lo, hi] = ranges[i];
    const std::int64_t n = hi - lo;
    for (std::int64_t b = 0; b < g.B; ++b) {
      for (std::int64_t t = 0; t < n; ++t) {
        const T* kr = recvs[i].data() + (b * n + t) * g.kvw;
        const T* vr = recvs[i].data() + ((g.B + b) * n + t) * g.kvw;
        T* kd = dk + (b * S + lo - offset(shape) + t) * g.kvs;
        T* vd = dv + (b * S + lo - offset(shape) + t) * g.kvs;
        for (std::int64_t e = 0; e < g.kvw; ++e) {
          kd[e] += kr[e];
          vd[e] += vr[e];
        }
      }
    }
  }
}

// ---- global layers: the causal pipeline -----------------------------------------------------------------------

template <typename T>
void ContextParallelAttention<T>::global_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                                                 const AttentionShape& shape, const AttentionMask& mask,
                                                 const ComputeOptions& options) {
  const Geometry g = geometry_of(shape);
  const int R = comm_->size(), me = comm_->rank();
  const std::int64_t S = g.S, block = g.B * S * g.kvw;  // elements of one block's keys (as many values follow)
  pack_rows(block_a_, k, v, g, offset(shape), offset(shape), offset(shape) + S);
  block_b_.resize(block_a_.size());
  part_out_.resize(sz(g.B * S * g.qw));
  part_lse_.resize(sz(g.B * g.H * S));
  std::vector<T>* cur = &block_a_;
  std::vector<T>* next = &block_b_;
  for (int step = 0; step <= me; ++step) {
    const int owner = me - step;  // whose block *cur holds
    Communicator::Ticket sent, received;
    if (me + 1 < R) sent = comm_->isend(cur->data(), cur->size() * sizeof(T), me + 1, kTagBlock);
    if (step < me) received = comm_->irecv(next->data(), next->size() * sizeof(T), me - 1, kTagBlock);
    if (mask.doc_start != nullptr) shift_doc(doc_, mask.doc_start, g.B * S, owner * S);
    const AttentionMask m{kGlobalWindow, mask.doc_start != nullptr ? doc_.data() : nullptr, mask.alibi_slopes};
    const AttentionShape s{g.B, S, g.H, g.Hkv, g.hd, g.qs, g.kvw, S, step * S};
    if (step == 0) {
      attention_forward(out, lse, q, cur->data(), cur->data() + block, s, m, options);
    } else {
      attention_forward(part_out_.data(), part_lse_.data(), q, cur->data(), cur->data() + block, s, m, options);
      // (out, lse) <- the softmax over both key sets: weights exp(lse_x - lse_new), lse_new = log-add-exp.
      for (std::int64_t b = 0; b < g.B; ++b) {
        for (std::int64_t h = 0; h < g.H; ++h) {
          for (std::int64_t t = 0; t < S; ++t) {
            T& la = lse[(b * g.H + h) * S + t];
            const T lb = part_lse_[sz((b * g.H + h) * S + t)];
            if (lb == -std::numeric_limits<T>::infinity()) continue;  // the row sees nothing of this block
            const double hi = std::max<double>(la, lb);
            const double wa = std::exp(static_cast<double>(la) - hi), wb = std::exp(static_cast<double>(lb) - hi);
            const double total = wa + wb;
            const T fa = static_cast<T>(wa / total), fb = static_cast<T>(wb / total);
            T* o = out + (b * S + t) * g.qw + h * g.hd;
            const T* p = part_out_.data() + (b * S + t) * g.qw + h * g.hd;
            for (std::int64_t e = 0; e < g.hd; ++e) o[e] = o[e] * fa + p[e] * fb;
            la = static_cast<T>(hi + std::log(total));
          }
        }
      }
    }
    comm_->wait(sent);
    comm_->wait(received);
    std::swap(cur, next);
  }
}

template <typename T>
void ContextParallelAttention<T>::global_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const T* lse,
                                                  const T* q, const T* k, const T* v, const AttentionShape& shape,
                                                  const AttentionMask& mask, const ComputeOptions& options) {
  const Geometry g = geometry_of(shape);
  const int R = comm_->size(), me = comm_->rank();
  const std::int64_t S = g.S, block = g.B * S * g.kvw;
  // A message: keys | values | dK accumulator | dV accumulator, [B, S, kvw] each.
  pack_rows(block_a_, k, v, g, offset(shape), offset(shape), offset(shape) + S);
  block_a_.resize(sz(4 * block));
  block_b_.resize(block_a_.size());
  grad_a_.resize(sz(2 * block));         // this rank's contribution to the current block's dK | dV
  grad_b_.resize(sz(2 * block));         // the finished dK | dV of this rank's own block
  part_out_.resize(sz(g.B * S * g.qs));  // dq of one block, [B, S, *] with q's row stride (the kernel's layout)
  Communicator::Ticket final_grads;
  if (me + 1 < R) final_grads = comm_->irecv(grad_b_.data(), grad_b_.size() * sizeof(T), R - 1, kTagFinal);
  std::vector<T>* cur = &block_a_;
  std::vector<T>* next = &block_b_;
  std::vector<std::vector<T>> finals;  // the last rank's returns, alive until their sends complete
  std::vector<Communicator::Ticket> final_sends;
  for (int step = 0; step <= me; ++step) {
    const int owner = me - step;
    Communicator::Ticket sent, received;
    if (step < me) received = comm_->irecv(next->data(), next->size() * sizeof(T), me - 1, kTagBlockGrad);
    if (mask.doc_start != nullptr) shift_doc(doc_, mask.doc_start, g.B * S, owner * S);
    const AttentionMask m{kGlobalWindow, mask.doc_start != nullptr ? doc_.data() : nullptr, mask.alibi_slopes};
    const AttentionShape s{g.B, S, g.H, g.Hkv, g.hd, g.qs, g.kvw, S, step * S};
    T* kb = cur->data();
    T* acc = kb + 2 * block;  // dK | dV so far (ranks owner .. me - 1)
    attention_backward(step == 0 ? dq : part_out_.data(), grad_a_.data(), grad_a_.data() + block, dout, out, lse, q, kb,
                       kb + block, s, m, options);
    if (step == 0) {
      std::copy(grad_a_.begin(), grad_a_.end(), acc);
    } else {
      for (std::int64_t i = 0; i < 2 * block; ++i) acc[i] += grad_a_[sz(i)];
      for (std::int64_t r = 0; r < g.B * S; ++r) {
        T* d = dq + r * g.qs;
        const T* p = part_out_.data() + r * g.qs;
        for (std::int64_t e = 0; e < g.qw; ++e) d[e] += p[e];
      }
    }
    if (me + 1 < R) {
      sent = comm_->isend(cur->data(), cur->size() * sizeof(T), me + 1, kTagBlockGrad);
    } else if (owner != me) {
      finals.emplace_back(acc, acc + 2 * block);
      final_sends.push_back(comm_->isend(finals.back().data(), finals.back().size() * sizeof(T), owner, kTagFinal));
    } else {
      std::copy(acc, acc + 2 * block, grad_b_.data());
    }
    comm_->wait(sent);
    comm_->wait(received);
    std::swap(cur, next);
  }
  comm_->wait(final_grads);
  for (const Communicator::Ticket& t : final_sends) comm_->wait(t);
  for (std::int64_t b = 0; b < g.B; ++b) {
    for (std::int64_t t = 0; t < S; ++t) {
      const T* ks = grad_b_.data() + (b * S + t) * g.kvw;
      const T* vs = ks + block;
      std::copy(ks, ks + g.kvw, dk + (b * S + t) * g.kvs);
      std::copy(vs, vs + g.kvw, dv + (b * S + t) * g.kvs);
    }
  }
}

template class ContextParallelAttention<float>;
template class ContextParallelAttention<double>;

LayerTraffic context_parallel_traffic(std::int64_t window, int rank, int ranks, std::int64_t slice, std::int64_t batch,
                                      std::int64_t kv_dim, std::int64_t elem_bytes) {
  const std::int64_t row = 2 * batch * kv_dim * elem_bytes;  // a key and a value row of every sequence
  LayerTraffic t;
  if (window == kGlobalWindow) {
    // Ranks before the last forward r + 1 blocks (their own and the r received); backward sends each with its
    // dK, dV accumulators (twice the bytes), and the last rank returns the R - 1 other blocks' gradients.
    if (rank + 1 < ranks) {
      t.forward_bytes = (rank + 1) * slice * row;
      t.backward_bytes = 2 * (rank + 1) * slice * row;
    } else {
      t.backward_bytes = (ranks - 1) * slice * row;
    }
    return t;
  }
  // Forward: the rows of this slice inside later ranks' halos; backward: the same again (the halo is exchanged
  // anew) plus the gradients of this rank's own halo rows, sent back to their owners.
  std::int64_t given = 0;
  for (int user = rank + 1; user < ranks; ++user) {
    const auto [lo, hi] = halo_overlap(window, user, rank, slice);
    given += std::max<std::int64_t>(0, hi - lo);
  }
  t.forward_bytes = given * row;
  t.backward_bytes = (given + halo_rows(window, rank, slice)) * row;
  return t;
}

BatchView slice_columns(const Batch& whole, int rank, int ranks, bool doc_mask, Batch& slice) {
  const std::int64_t T_full = whole.seq_len, B = whole.batch_size;
  ZEBRA_CHECK(ranks >= 1 && T_full % ranks == 0, "context parallel: seq_len ", T_full,
              " must be a multiple of the number of ranks (", ranks, ")");
  const std::int64_t S = T_full / ranks, first = rank * S;
  slice.batch_size = B;
  slice.seq_len = S;
  slice.tokens.resize(sz(B * S));
  slice.targets.resize(sz(B * S));
  slice.doc_start.resize(doc_mask ? sz(B * S) : 0);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::size_t src = sz(b * T_full + first), dst = sz(b * S);
    std::copy_n(whole.tokens.begin() + static_cast<std::ptrdiff_t>(src), S,
                slice.tokens.begin() + static_cast<std::ptrdiff_t>(dst));
    std::copy_n(whole.targets.begin() + static_cast<std::ptrdiff_t>(src), S,
                slice.targets.begin() + static_cast<std::ptrdiff_t>(dst));
    if (doc_mask) {
      std::copy_n(whole.doc_start.begin() + static_cast<std::ptrdiff_t>(src), S,
                  slice.doc_start.begin() + static_cast<std::ptrdiff_t>(dst));
    }
  }
  BatchView view{B, S, slice.tokens.data(), slice.targets.data(), doc_mask ? slice.doc_start.data() : nullptr};
  view.position_offset = first;
  view.full_len = T_full;
  return view;
}

}  // namespace zebra
