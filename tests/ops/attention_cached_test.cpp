// Tests of the cached attention kernel (ops/attention_cached.hpp) against a plain scalar double reference
// written here: for each query, every key position j < p0 + n_new with key_visible(i, j, window) is scored
// from the full, position-indexed key/value arrays and a full (not online) softmax is taken. The kernel
// instead reads past positions through its ring/linear store and the chunk's own rows, so the comparison
// checks the addressing (ring slots, the chunk boundary), the mask and the online softmax together.
//
// Inputs are uniform in [-1, 1]. Tolerances, |got - ref| <= atol + rtol |ref|:
//  - double kernel: the same sums as the reference in another order. A score is an hd-term dot product with
//    terms <= 1 / sqrt(hd) (after scaling), error <= hd * u * sqrt(hd) ~ 1.6e-13 for hd = 128 (u = 1.1e-16);
//    the output is a convex combination of values <= 1 over <= 400 keys, error ~ 400 u plus the score
//    error: atol = rtol = 1e-12.
//  - float kernel (u = 6e-8): the same bound gives ~1e-4 for the score in the worst case and ~sqrt(hd) u
//    ~ 7e-7 typically; the polynomial exp adds ~1e-7 relative, the output sums ~sqrt(400) u ~ 1e-6.
//    atol 5e-5, rtol 1e-4 sits ~300x above what is measured (~1.6e-7) and far below a wrong mask entry or ring
//    slot, which moves an output by ~1e-2 or more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/ops/attention.hpp"
#include "zebra/ops/attention_cached.hpp"
#include "zebra/ops/cpu_features.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/ref/attention_ref.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

struct Case {
  std::int64_t n_heads = 4, n_kv_heads = 2, head_dim = 32;
  std::int64_t p0 = 0, n_new = 1;
  std::int64_t window = kGlobalWindow;
  bool ring = false;        // past store as a ring of `window` rows (local layers) or linear
  bool head_major = false;  // past store [Hkv, rows, hd] (as KvCache keeps it) instead of [rows, Hkv, hd]
  bool alibi = false;
  std::string name() const {
    std::ostringstream s;
    s << "H=" << n_heads << " Hkv=" << n_kv_heads << " hd=" << head_dim << " p0=" << p0 << " n_new=" << n_new
      << " window=" << (window == kGlobalWindow ? std::string("global") : std::to_string(window))
      << (ring ? " ring" : "") << (head_major ? " head-major" : "") << (alibi ? " alibi" : "");
    return s.str();
  }
};

// Scalar reference: q [n_new, H, hd]; k, v [p0 + n_new, Hkv, hd] indexed by position; out [n_new, H, hd].
void reference(std::vector<double>& out, const std::vector<double>& q, const std::vector<double>& k,
               const std::vector<double>& v, const Case& c, const std::vector<double>& slopes) {
  const std::int64_t hd = c.head_dim, group = c.n_heads / c.n_kv_heads, kvw = c.n_kv_heads * hd;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  out.assign(static_cast<std::size_t>(c.n_new * c.n_heads * hd), 0.0);
  for (std::int64_t r = 0; r < c.n_new; ++r) {
    const std::int64_t i = c.p0 + r;
    for (std::int64_t h = 0; h < c.n_heads; ++h) {
      const std::int64_t kvh = h / group;
      std::vector<double> s(static_cast<std::size_t>(i + 1), -INFINITY);
      double mx = -INFINITY;
      for (std::int64_t j = 0; j <= i; ++j) {
        if (!key_visible(i, j, c.window)) continue;
        double dot = 0.0;
        for (std::int64_t e = 0; e < hd; ++e)
          dot += q[static_cast<std::size_t>((r * c.n_heads + h) * hd + e)] *
                 k[static_cast<std::size_t>(j * kvw + kvh * hd + e)];
        double score = dot * scale;
        if (!slopes.empty()) score -= slopes[static_cast<std::size_t>(h)] * static_cast<double>(i - j);
        s[static_cast<std::size_t>(j)] = score;
        mx = std::max(mx, score);
      }
      double sum = 0.0;
      for (double& x : s) {
        x = std::isinf(x) ? 0.0 : std::exp(x - mx);
        sum += x;
      }
      for (std::int64_t j = 0; j <= i; ++j) {
        const double p = s[static_cast<std::size_t>(j)] / sum;
        if (p == 0.0) continue;
        for (std::int64_t e = 0; e < hd; ++e)
          out[static_cast<std::size_t>((r * c.n_heads + h) * hd + e)] +=
              p * v[static_cast<std::size_t>(j * kvw + kvh * hd + e)];
      }
    }
  }
}

struct Inputs {
  std::vector<double> q, k, v;  // q [n_new, H*hd]; k, v [p0 + n_new, Hkv*hd] by position
};

Inputs make_inputs(const Case& c, std::uint64_t seed) {
  Rng rng(seed);
  auto fill = [&](std::vector<double>& x, std::int64_t n) {
    x.resize(static_cast<std::size_t>(n));
    for (double& e : x) e = 2.0 * rng.uniform() - 1.0;
  };
  Inputs in;
  fill(in.q, c.n_new * c.n_heads * c.head_dim);
  fill(in.k, (c.p0 + c.n_new) * c.n_kv_heads * c.head_dim);
  fill(in.v, (c.p0 + c.n_new) * c.n_kv_heads * c.head_dim);
  return in;
}

// Runs the kernel in T. The past store holds only what a cache would: a ring of `window` rows filled with
// positions [max(0, p0 - window), p0) at slot j % window (other rows hold garbage), or a linear store of
// positions [0, p0) preceded by nothing; rows interleaved or head-major. The new block is passed with a row stride
// wider than its width (as in a fused QKV buffer), and q likewise.
// store: the past store's dtype (T's own, or F16 / BF16 for float: the past keys and values rounded to it).
template <typename T>
std::vector<double> run_kernel(const Inputs& in, const Case& c, const std::vector<double>& slopes,
                               const ComputeOptions& options = {}, DType store = kDenseDType<T>) {
  const std::int64_t kvw = c.n_kv_heads * c.head_dim, qw = c.n_heads * c.head_dim;
  const std::int64_t q_stride = qw + 3, new_stride = kvw + 5;
  std::vector<T> q(static_cast<std::size_t>(c.n_new * q_stride), T(99));
  for (std::int64_t r = 0; r < c.n_new; ++r)
    for (std::int64_t e = 0; e < qw; ++e)
      q[static_cast<std::size_t>(r * q_stride + e)] = static_cast<T>(in.q[static_cast<std::size_t>(r * qw + e)]);
  std::vector<T> kn(static_cast<std::size_t>(c.n_new * new_stride), T(99)), vn(kn.size(), T(99));
  for (std::int64_t r = 0; r < c.n_new; ++r) {
    for (std::int64_t e = 0; e < kvw; ++e) {
      kn[static_cast<std::size_t>(r * new_stride + e)] =
          static_cast<T>(in.k[static_cast<std::size_t>((c.p0 + r) * kvw + e)]);
      vn[static_cast<std::size_t>(r * new_stride + e)] =
          static_cast<T>(in.v[static_cast<std::size_t>((c.p0 + r) * kvw + e)]);
    }
  }
  KvSource<T> past;
  std::vector<T> kp, vp;
  const std::int64_t rows = c.ring ? c.window : std::max<std::int64_t>(1, c.p0);
  kp.assign(static_cast<std::size_t>(rows * kvw), T(77));
  vp.assign(kp.size(), T(-77));
  if (c.ring) {
    past.ring = c.window;
    past.begin = std::max<std::int64_t>(0, c.p0 - c.window);
  }
  if (c.head_major) {
    past.stride = c.head_dim;
    past.head_stride = rows * c.head_dim;
  }
  for (std::int64_t j = past.begin; j < c.p0; ++j) {
    const std::int64_t row = c.ring ? j % c.window : j;
    for (std::int64_t g = 0; g < c.n_kv_heads; ++g) {
      for (std::int64_t e = 0; e < c.head_dim; ++e) {
        const std::size_t at =
            static_cast<std::size_t>(c.head_major ? (g * rows + row) * c.head_dim + e : row * kvw + g * c.head_dim + e);
        const std::size_t from = static_cast<std::size_t>(j * kvw + g * c.head_dim + e);
        kp[at] = static_cast<T>(in.k[from]);
        vp[at] = static_cast<T>(in.v[from]);
      }
    }
  }
  past.k = kp.data();
  past.v = vp.data();
  std::vector<std::uint16_t> kh, vh;
  if (store != kDenseDType<T>) {
    kh.resize(kp.size());
    vh.resize(vp.size());
    for (std::size_t i = 0; i < kp.size(); ++i) {
      const auto kf = static_cast<float>(kp[i]), vf = static_cast<float>(vp[i]);
      kh[i] = store == DType::kF16 ? float_to_f16(kf) : float_to_bf16(kf);
      vh[i] = store == DType::kF16 ? float_to_f16(vf) : float_to_bf16(vf);
    }
    past.k = kh.data();
    past.v = vh.data();
    past.dtype = store;
  }
  std::vector<T> out(static_cast<std::size_t>(c.n_new * qw), T(55));
  CachedAttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, q_stride, new_stride};
  attention_cached_forward(out.data(), q.data(), kn.data(), vn.data(), c.n_new, c.p0, past, shape, c.window,
                           slopes.empty() ? nullptr : slopes.data(), options);
  return std::vector<double>(out.begin(), out.end());
}

double max_violation(const std::vector<double>& got, const std::vector<double>& ref, double atol, double rtol) {
  double worst = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - ref[i]) / (atol + rtol * std::abs(ref[i])));
  }
  return worst;
}

std::vector<Case> sweep() {
  std::vector<Case> cases;
  const std::int64_t heads[][2] = {{4, 4}, {4, 2}, {8, 2}};
  const std::int64_t dims[] = {8, 32, 64, 128, 12};
  const std::int64_t windows[] = {1, 3, 17, 64, 100, kGlobalWindow};
  // (p0, n_new): decode steps, short and long chunks, chunks crossing tile edges and longer than the window.
  const std::int64_t spans[][2] = {{0, 1}, {0, 70}, {5, 1}, {63, 2}, {130, 1}, {130, 33}, {200, 100}, {64, 64}};
  std::uint64_t k = 0;
  for (const auto& hh : heads) {
    for (std::int64_t hd : dims) {
      for (std::int64_t w : windows) {
        for (const auto& sp : spans) {
          ++k;
          if (k % 3 != 0 && !(hd == 32 && hh[1] == 2)) continue;  // a thinned-out sweep, full for one shape
          Case c;
          c.n_heads = hh[0];
          c.n_kv_heads = hh[1];
          c.head_dim = hd;
          c.window = w;
          c.p0 = sp[0];
          c.n_new = sp[1];
          c.ring = w != kGlobalWindow;
          c.alibi = k % 2 == 0;
          c.head_major = k % 4 < 2;
          cases.push_back(c);
        }
      }
    }
  }
  return cases;
}

TEST(AttentionCached, MatchesScalarReference) {
  for (const Case& c : sweep()) {
    SCOPED_TRACE(c.name());
    const Inputs in = make_inputs(c, 1000 + static_cast<std::uint64_t>(c.p0 * 7 + c.n_new + c.head_dim));
    const std::vector<double> slopes = c.alibi ? alibi_slopes(c.n_heads) : std::vector<double>{};
    std::vector<double> ref;
    reference(ref, in.q, in.k, in.v, c, slopes);
    EXPECT_LE(max_violation(run_kernel<double>(in, c, slopes), ref, 1e-12, 1e-12), 1.0);
    EXPECT_LE(max_violation(run_kernel<float>(in, c, slopes), ref, 5e-5, 1e-4), 1.0);
  }
}

// The float kernels on every SIMD path (the decode kernel for n_new <= 4, the tiled one above), with fp32 and
// 16-bit past stores. Against the reference on the rounded past keys / values (the same values the kernel
// reads): the float tolerance above. Against the unrounded inputs: storage rounds each past value by at most
// u_s |x| <= u_s (2^-11 f16, 2^-8 bf16; inputs in [-1, 1], f16 normal there except below 2^-14, where its
// absolute error 2^-25 is smaller still), so a score (q . k / sqrt(hd), |q| <= 1) moves by at most
// u_s sqrt(hd), a softmax weight vector by at most 2 u_s sqrt(hd) in L1 (the softmax is 1-Lipschitz from the
// max norm of the scores to half the L1 norm of the weights), and the output, a combination of values <= 1
// each moved by u_s, by u_s (1 + 2 sqrt(hd)).
TEST(AttentionCached, FloatPathsAndSixteenBitStores) {
  std::vector<Case> cases;
  for (const Case& c : sweep()) {
    if (c.head_dim == 64 || c.head_dim == 12 || (c.head_dim == 32 && c.n_kv_heads == 2)) cases.push_back(c);
  }
  // Groups of 3 (SmolLM2's 9 / 3 heads), a decode step after several key chunks, global and local (a ring).
  for (std::int64_t w : {kGlobalWindow, std::int64_t{300}}) {
    Case c;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.p0 = 700;
    c.n_new = 3;
    c.window = w;
    c.ring = w != kGlobalWindow;
    c.head_major = true;
    cases.push_back(c);
  }
  for (SimdPath path : {SimdPath::kScalar, SimdPath::kAvx2, SimdPath::kAvx512}) {
    if (!simd_path_supported(path)) continue;
    ComputeOptions options;
    options.simd = path;
    for (DType store : {DType::kF32, DType::kF16, DType::kBF16}) {
      const double us = store == DType::kF16 ? 0x1.0p-11 : store == DType::kBF16 ? 0x1.0p-8 : 0.0;
      for (const Case& c : cases) {
        SCOPED_TRACE(c.name() + " path " + to_string(path) + " store " + to_string(store));
        const Inputs in = make_inputs(c, 2000 + static_cast<std::uint64_t>(c.p0 * 5 + c.n_new + c.head_dim));
        const std::vector<double> slopes = c.alibi ? alibi_slopes(c.n_heads) : std::vector<double>{};
        Inputs rounded = in;  // the past positions as the store holds them
        const std::int64_t past_values = c.p0 * c.n_kv_heads * c.head_dim;
        for (std::int64_t i = 0; i < past_values; ++i) {
          for (std::vector<double>* x : {&rounded.k, &rounded.v}) {
            const auto f = static_cast<float>((*x)[static_cast<std::size_t>(i)]);
            if (store == DType::kF16) (*x)[static_cast<std::size_t>(i)] = f16_to_float(float_to_f16(f));
            if (store == DType::kBF16) (*x)[static_cast<std::size_t>(i)] = bf16_to_float(float_to_bf16(f));
          }
        }
        std::vector<double> ref, ref_rounded;
        reference(ref, in.q, in.k, in.v, c, slopes);
        reference(ref_rounded, rounded.q, rounded.k, rounded.v, c, slopes);
        const std::vector<double> got = run_kernel<float>(in, c, slopes, options, store);
        ASSERT_LE(max_violation(got, ref_rounded, 5e-5, 1e-4), 1.0);
        const double bound = us * (1.0 + 2.0 * std::sqrt(static_cast<double>(c.head_dim)));
        ASSERT_LE(max_violation(got, ref, 5e-5 + bound, 1e-4), 1.0);
      }
    }
  }
}

// A local layer read through a linear store (every past position kept) gives the same result as through a
// ring: the ring only drops what the mask hides.
TEST(AttentionCached, RingEqualsLinearStore) {
  Case c;
  c.window = 5;
  c.p0 = 23;
  c.n_new = 9;
  const Inputs in = make_inputs(c, 5);
  Case lin = c;
  lin.ring = false;
  Case ring = c;
  ring.ring = true;
  EXPECT_EQ(run_kernel<double>(in, lin, {}), run_kernel<double>(in, ring, {}));
}

// With no past (p0 = 0) the kernel computes ordinary causal attention: compare with the existing full
// reference of ops/ref/attention_ref.hpp as well.
TEST(AttentionCached, NoPastEqualsFullAttentionReference) {
  for (std::int64_t w : {std::int64_t{1}, std::int64_t{4}, kGlobalWindow}) {
    Case c;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.n_new = 45;
    c.window = w;
    const Inputs in = make_inputs(c, 9);
    std::vector<double> out(static_cast<std::size_t>(c.n_new * c.n_heads * c.head_dim));
    std::vector<double> lse(static_cast<std::size_t>(c.n_new * c.n_heads));
    AttentionShape shape{1, c.n_new, c.n_heads, c.n_kv_heads, c.head_dim, 0, 0};
    AttentionMask mask{w, nullptr, nullptr};
    ref::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), shape, mask);
    EXPECT_LE(max_violation(run_kernel<double>(in, c, {}), out, 1e-12, 1e-12), 1.0) << c.name();
  }
}

TEST(AttentionCached, RefusesAPastStoreMissingVisibleKeys) {
  std::vector<float> q(4), k(4), v(4), out(4), kp(4 * 10), vp(4 * 10);
  CachedAttentionShape shape{1, 1, 4, 0, 0};
  KvSource<float> past;
  past.k = kp.data();
  past.v = vp.data();
  past.begin = 3;  // holds positions from 3 on
  // A global query at position 10 sees position 0.
  EXPECT_THROW(
      attention_cached_forward(out.data(), q.data(), k.data(), v.data(), 1, 10, past, shape, kGlobalWindow, nullptr),
      Error);
  // A window of 7 at position 10 sees positions 4..10: fine.
  EXPECT_NO_THROW(attention_cached_forward(out.data(), q.data(), k.data(), v.data(), 1, 10, past, shape, 7, nullptr));
  KvSource<float> none{};
  EXPECT_THROW(attention_cached_forward(out.data(), q.data(), k.data(), v.data(), 1, 10, none, shape, 7, nullptr),
               Error);
}

}  // namespace
}  // namespace zebra
