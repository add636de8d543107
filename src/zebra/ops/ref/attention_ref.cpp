#include "zebra/ops/ref/attention_ref.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "zebra/ops/mask.hpp"
#include "zebra/util/error.hpp"

namespace zebra::ref {

namespace {

struct RefDims {
  std::int64_t B, T, H, Hkv, hd, group, qs, kvs, os;
  std::int64_t Tk, q_pos;  // key rows; key position of query row 0
  double scale;
};

RefDims dims_of(const AttentionShape& s, const AttentionMask& mask) {
  ZEBRA_CHECK(s.head_dim > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
              "ref::attention: bad shape n_heads=", s.n_heads, " n_kv_heads=", s.n_kv_heads, " head_dim=", s.head_dim);
  ZEBRA_CHECK(mask.window >= 1, "ref::attention: window must be >= 1, got ", mask.window);
  RefDims d{};
  d.B = s.batch;
  d.T = s.seq_len;
  d.Tk = s.kv_len == 0 ? s.seq_len : s.kv_len;
  d.q_pos = s.q_pos;
  d.H = s.n_heads;
  d.Hkv = s.n_kv_heads;
  d.hd = s.head_dim;
  d.group = s.n_heads / s.n_kv_heads;
  d.os = s.n_heads * s.head_dim;
  d.qs = s.q_stride == 0 ? d.os : s.q_stride;
  d.kvs = s.kv_stride == 0 ? s.n_kv_heads * s.head_dim : s.kv_stride;
  d.scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  return d;
}

// Softmax probabilities p[j], j < Tk, of query (b, h, i); 0 where key j is not visible. Returns the lse (-inf,
// with every p[j] = 0, when the query sees no key).
double probabilities(std::vector<double>& p, const double* q, const double* k, const RefDims& d,
                     const AttentionMask& mask, std::int64_t b, std::int64_t h, std::int64_t i) {
  const std::int64_t kvh = h / d.group;
  const std::int64_t doc = mask.doc_start == nullptr ? 0 : mask.doc_start[b * d.T + i];
  const double* qi = q + (b * d.T + i) * d.qs + h * d.hd;
  double m = -std::numeric_limits<double>::infinity();
  const std::int64_t pos = d.q_pos + i;
  for (std::int64_t j = 0; j < d.Tk; ++j) {
    if (!key_visible(pos, j, mask.window, doc)) {
      p[j] = -std::numeric_limits<double>::infinity();
      continue;
    }
    const double* kj = k + (b * d.Tk + j) * d.kvs + kvh * d.hd;
    double s = 0.0;
    for (std::int64_t e = 0; e < d.hd; ++e) s += qi[e] * kj[e];
    s *= d.scale;
    if (mask.alibi_slopes != nullptr) s -= mask.alibi_slopes[h] * static_cast<double>(pos - j);
    p[j] = s;
    if (s > m) m = s;
  }
  if (m == -std::numeric_limits<double>::infinity()) {
    for (std::int64_t j = 0; j < d.Tk; ++j) p[j] = 0.0;
    return m;
  }
  double l = 0.0;
  for (std::int64_t j = 0; j < d.Tk; ++j) {
    p[j] = std::exp(p[j] - m);  // exp(-inf) = 0 for masked keys
    l += p[j];
  }
  for (std::int64_t j = 0; j < d.Tk; ++j) p[j] /= l;
  return m + std::log(l);
}

}  // namespace

void attention_forward(double* out, double* lse, const double* q, const double* k, const double* v,
                       const AttentionShape& shape, const AttentionMask& mask) {
  const RefDims d = dims_of(shape, mask);
  std::vector<double> p(static_cast<std::size_t>(d.Tk));
  for (std::int64_t b = 0; b < d.B; ++b) {
    for (std::int64_t h = 0; h < d.H; ++h) {
      const std::int64_t kvh = h / d.group;
      for (std::int64_t i = 0; i < d.T; ++i) {
        lse[(b * d.H + h) * d.T + i] = probabilities(p, q, k, d, mask, b, h, i);
        double* oi = out + (b * d.T + i) * d.os + h * d.hd;
        for (std::int64_t e = 0; e < d.hd; ++e) oi[e] = 0.0;
        for (std::int64_t j = 0; j < d.Tk; ++j) {
          const double* vj = v + (b * d.Tk + j) * d.kvs + kvh * d.hd;
          for (std::int64_t e = 0; e < d.hd; ++e) oi[e] += p[j] * vj[e];
        }
      }
    }
  }
}

void attention_backward(double* dq, double* dk, double* dv, const double* dout, const double* /*out*/,
                        const double* /*lse*/, const double* q, const double* k, const double* v,
                        const AttentionShape& shape, const AttentionMask& mask) {
  const RefDims d = dims_of(shape, mask);
  for (std::int64_t t = 0; t < d.B * d.T; ++t) {
    for (std::int64_t c = 0; c < d.H * d.hd; ++c) dq[t * d.qs + c] = 0.0;
  }
  for (std::int64_t t = 0; t < d.B * d.Tk; ++t) {
    for (std::int64_t c = 0; c < d.Hkv * d.hd; ++c) {
      dk[t * d.kvs + c] = 0.0;
      dv[t * d.kvs + c] = 0.0;
    }
  }
  std::vector<double> p(static_cast<std::size_t>(d.Tk));
  std::vector<double> dp(static_cast<std::size_t>(d.Tk));
  for (std::int64_t b = 0; b < d.B; ++b) {
    for (std::int64_t h = 0; h < d.H; ++h) {
      const std::int64_t kvh = h / d.group;
      for (std::int64_t i = 0; i < d.T; ++i) {
        probabilities(p, q, k, d, mask, b, h, i);
        const double* doi = dout + (b * d.T + i) * d.os + h * d.hd;
        const double* qi = q + (b * d.T + i) * d.qs + h * d.hd;
        double* dqi = dq + (b * d.T + i) * d.qs + h * d.hd;
        // dP_ij = dout_i . v_j; D_i = sum_j P_ij dP_ij (= dout_i . out_i).
        double big_d = 0.0;
        for (std::int64_t j = 0; j < d.Tk; ++j) {
          const double* vj = v + (b * d.Tk + j) * d.kvs + kvh * d.hd;
          double s = 0.0;
          for (std::int64_t e = 0; e < d.hd; ++e) s += doi[e] * vj[e];
          dp[j] = s;
          big_d += p[j] * s;
        }
        for (std::int64_t j = 0; j < d.Tk; ++j) {
          if (p[j] == 0.0) continue;
          const double ds = p[j] * (dp[j] - big_d) * d.scale;  // dL/d(q.k) for this pair
          const std::int64_t off = (b * d.Tk + j) * d.kvs + kvh * d.hd;
          for (std::int64_t e = 0; e < d.hd; ++e) {
            dqi[e] += ds * k[off + e];
            dk[off + e] += ds * qi[e];
            dv[off + e] += p[j] * doi[e];
          }
        }
      }
    }
  }
}

}  // namespace zebra::ref
