// Tests of the flash attention kernels (ops/attention.hpp) against the scalar double reference
// (ops/ref/attention_ref.hpp), against central finite differences, and of the invariants of DESIGN.md §6.
//
// Tolerances have the form  |got - ref| <= atol * scale + rtol * |ref|,  scale = max(1, max |ref| over the
// tensor). The absolute part scales with the tensor because every output element is a sum whose terms have
// about the tensor's magnitude while the element itself may cancel to near zero; a fixed absolute floor
// would be too loose for large tensors. The floor of 1 is the size of the terms themselves (inputs are
// N(0, 1)): with window 1 (or T = 1) dq and dk are exactly 0 in exact arithmetic (dS = P (dP - D), dP = D)
// and the kernel's result is the rounding noise of that O(1) cancellation.
//
// Float kernel vs double reference (inputs ~ N(0, 1), unit-roundoff u = 2^-24 ~ 6e-8):
//  - a score is a head_dim-term dot product: rounding error <= hd * u * sum|q_e k_e| / sqrt(hd), in practice
//    ~ sqrt(hd) * u * |terms| (random signs) ~ 1e-6 for hd = 128; the ALiBi bias slope * (i - j) <= ~100
//    adds ~u * 100 ~ 6e-6 for far keys, whose weight is then tiny. exp is accurate to ~1e-7 relative.
//  - out = sum_j p_j v_j over K <= 200 keys, lse = m + log(l): a score error ds perturbs p_j relatively by
//    ~ds, and the K-term sums add ~K * u * max|term| in the worst case, sqrt(K) * u typically.
//  - gradients sum more terms: dv_j and dk_j collect from every query of every head in the GQA group
//    (K <= 4 * 200 = 800 terms), each term itself a product of quantities carrying the errors above.
//  Worst-case bounds (K * u ~ 5e-5 relative to the terms) are far above what is seen; the tolerances below
//  (atol 2e-5 of the tensor's scale, rtol 1e-4) sit ~6x above the largest error measured over the whole
//  sweep (0.16 of the tolerance) and orders of magnitude below the error of a real bug (a wrong mask entry,
//  ALiBi offset or GQA index moves results by ~1e-2 of the scale or more).
// Double kernel vs double reference: the same sums in a different order, so errors ~ K * 1.1e-16 * terms
//  ~ 1e-13 at most here: atol = rtol = 1e-12 (measured: 0.003 of that).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "zebra/ops/attention.hpp"
#include "zebra/ops/cpu_features.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/ref/attention_ref.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

constexpr double kSentinel = 12345.0;  // pre-filled into gradient buffers: catches unwritten / stray writes

struct Case {
  std::int64_t batch = 2;
  std::int64_t seq_len = 0;
  std::int64_t n_heads = 4;
  std::int64_t n_kv_heads = 4;
  std::int64_t head_dim = 32;
  std::int64_t window = kGlobalWindow;
  bool alibi = false;
  bool doc = false;
  bool fused = false;

  std::string name() const {
    std::ostringstream s;
    s << "B=" << batch << " T=" << seq_len << " H=" << n_heads << " Hkv=" << n_kv_heads << " hd=" << head_dim
      << " window=" << (window == kGlobalWindow ? std::string("global") : std::to_string(window))
      << (alibi ? " alibi" : "") << (doc ? " doc" : "") << (fused ? " fused" : "");
    return s.str();
  }
};

// The index-th combination of the parameters other than T and window: consecutive indices cycle through
// GQA ratio (period 3: Hkv 4, 2, 1 with 4 heads), alibi (2), doc mask (4), fused layout (8) and head_dims
// (in steps of 5), so that every value of each meets many sizes, windows and the others.
Case cycled_case(std::int64_t seq_len, std::int64_t window, int index, const std::vector<std::int64_t>& head_dims) {
  const std::int64_t kv_heads[] = {4, 2, 1};
  Case c;
  c.seq_len = seq_len;
  c.window = window;
  c.n_kv_heads = kv_heads[index % 3];
  c.alibi = index % 2 == 1;
  c.doc = (index / 2) % 2 == 1;
  c.fused = (index / 4) % 2 == 1;
  c.head_dim = head_dims[static_cast<std::size_t>(index / 5) % head_dims.size()];
  return c;
}

// Document starts used when Case::doc is set: batch row 0 has documents at 0, 37, 90; row 1 at 0, 5, 61.
std::vector<std::int32_t> make_doc_start(std::int64_t batch, std::int64_t seq_len) {
  const std::int32_t starts[2][3] = {{0, 37, 90}, {0, 5, 61}};
  std::vector<std::int32_t> out(static_cast<std::size_t>(batch * seq_len));
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t t = 0; t < seq_len; ++t) {
      std::int32_t s = 0;
      for (std::int32_t x : starts[b % 2]) {
        if (x <= t) s = x;
      }
      out[static_cast<std::size_t>(b * seq_len + t)] = s;
    }
  }
  return out;
}

// The inputs of one case, laid out as the kernel reads them. Fused: one buffer [B*T, width] holding q, k, v
// as column blocks plus a spare block of 3 columns that nobody may touch; otherwise q, k, v back to back.
struct Inputs {
  Case c;
  AttentionShape shape;
  std::int64_t q_off = 0, k_off = 0, v_off = 0;
  std::vector<double> qkv;
  std::vector<double> dout;  // [B, T, H, hd]
  std::vector<std::int32_t> doc_start;
  std::vector<double> slopes;

  explicit Inputs(const Case& cs, std::uint64_t seed = 1) : c(cs) {
    const std::int64_t rows = c.batch * c.seq_len;
    const std::int64_t qw = c.n_heads * c.head_dim, kvw = c.n_kv_heads * c.head_dim;
    shape = AttentionShape{c.batch, c.seq_len, c.n_heads, c.n_kv_heads, c.head_dim, 0, 0};
    if (c.fused) {
      const std::int64_t width = qw + 2 * kvw + 3;
      shape.q_stride = shape.kv_stride = width;
      q_off = 0;
      k_off = qw;
      v_off = qw + kvw;
      qkv.resize(static_cast<std::size_t>(rows * width));
    } else {
      q_off = 0;
      k_off = rows * qw;
      v_off = rows * (qw + kvw);
      qkv.resize(static_cast<std::size_t>(rows * (qw + 2 * kvw)));
    }
    Rng rng(seed);
    for (double& x : qkv) x = rng.normal();
    dout.resize(static_cast<std::size_t>(rows * qw));
    for (double& x : dout) x = rng.normal();
    if (c.doc) doc_start = make_doc_start(c.batch, c.seq_len);
    if (c.alibi) slopes = alibi_slopes(c.n_heads);
  }

  AttentionMask mask() const {
    return AttentionMask{c.window, doc_start.empty() ? nullptr : doc_start.data(),
                         slopes.empty() ? nullptr : slopes.data()};
  }
  std::int64_t q_stride() const { return shape.q_stride == 0 ? c.n_heads * c.head_dim : shape.q_stride; }
  std::int64_t kv_stride() const { return shape.kv_stride == 0 ? c.n_kv_heads * c.head_dim : shape.kv_stride; }
};

template <typename T>
struct Result {
  std::vector<T> out;   // [B, T, H, hd]
  std::vector<T> lse;   // [B, H, T]
  std::vector<T> grad;  // dq, dk, dv in the layout of Inputs::qkv
  AttentionStats forward_stats, backward_stats;
};

template <typename T>
Result<T> run_kernel(const Inputs& in, const ComputeOptions& options = {}) {
  const Case& c = in.c;
  std::vector<T> qkv(in.qkv.begin(), in.qkv.end());
  std::vector<T> dout(in.dout.begin(), in.dout.end());
  Result<T> r;
  r.out.assign(static_cast<std::size_t>(c.batch * c.seq_len * c.n_heads * c.head_dim), T(kSentinel));
  r.lse.assign(static_cast<std::size_t>(c.batch * c.n_heads * c.seq_len), T(kSentinel));
  r.grad.assign(qkv.size(), T(kSentinel));
  const AttentionMask mask = in.mask();
  attention_forward(r.out.data(), r.lse.data(), qkv.data() + in.q_off, qkv.data() + in.k_off, qkv.data() + in.v_off,
                    in.shape, mask, &r.forward_stats, options);
  attention_backward(r.grad.data() + in.q_off, r.grad.data() + in.k_off, r.grad.data() + in.v_off, dout.data(),
                     r.out.data(), r.lse.data(), qkv.data() + in.q_off, qkv.data() + in.k_off, qkv.data() + in.v_off,
                     in.shape, mask, &r.backward_stats, options);
  return r;
}

Result<double> run_ref(const Inputs& in) {
  const Case& c = in.c;
  Result<double> r;
  r.out.assign(static_cast<std::size_t>(c.batch * c.seq_len * c.n_heads * c.head_dim), kSentinel);
  r.lse.assign(static_cast<std::size_t>(c.batch * c.n_heads * c.seq_len), kSentinel);
  r.grad.assign(in.qkv.size(), kSentinel);
  const AttentionMask mask = in.mask();
  const double* qkv = in.qkv.data();
  ref::attention_forward(r.out.data(), r.lse.data(), qkv + in.q_off, qkv + in.k_off, qkv + in.v_off, in.shape, mask);
  ref::attention_backward(r.grad.data() + in.q_off, r.grad.data() + in.k_off, r.grad.data() + in.v_off, in.dout.data(),
                          r.out.data(), r.lse.data(), qkv + in.q_off, qkv + in.k_off, qkv + in.v_off, in.shape, mask);
  return r;
}

// A block of `rows` rows of `width` elements, rows `stride` apart, starting at `offset`.
struct Block {
  const char* name;
  std::int64_t offset, stride, rows, width;
};

// Checks got against want on the block with |got - want| <= atol * max(1, max|want|) + rtol * |want|; returns the
// largest ratio error / tolerance seen (<= 1 passes).
template <typename A>
double expect_block_near(const std::vector<A>& got, const std::vector<double>& want, const Block& blk, double atol,
                         double rtol) {
  double scale = 1.0;
  for (std::int64_t r = 0; r < blk.rows; ++r) {
    for (std::int64_t e = 0; e < blk.width; ++e) {
      scale = std::max(scale, std::fabs(want[static_cast<std::size_t>(blk.offset + r * blk.stride + e)]));
    }
  }
  double worst = 0.0;
  std::int64_t bad = 0, worst_at = -1;
  for (std::int64_t r = 0; r < blk.rows; ++r) {
    for (std::int64_t e = 0; e < blk.width; ++e) {
      const auto idx = static_cast<std::size_t>(blk.offset + r * blk.stride + e);
      const double w = want[idx], g = static_cast<double>(got[idx]);
      const double tol = atol * scale + rtol * std::fabs(w);
      const double ratio = std::fabs(g - w) / tol;
      if (!(ratio <= 1.0)) ++bad;  // NaN counts as bad
      if (!(ratio <= worst)) {
        worst = ratio;
        worst_at = static_cast<std::int64_t>(idx);
      }
    }
  }
  if (bad > 0) {
    const auto idx = static_cast<std::size_t>(worst_at);
    ADD_FAILURE() << blk.name << ": " << bad << " elements out of tolerance; worst at flat index " << worst_at
                  << ": got " << static_cast<double>(got[idx]) << " want " << want[idx] << " (error/tolerance " << worst
                  << ", tensor scale " << scale << ")";
  }
  return worst;
}

// Compares kernel results with the reference for every tensor, and checks that gradient entries outside the
// q/k/v column blocks (the spare fused columns) were left alone.
template <typename A>
double expect_result_near(const Inputs& in, const Result<A>& got, const Result<double>& want, double atol,
                          double rtol) {
  const Case& c = in.c;
  const std::int64_t rows = c.batch * c.seq_len;
  const std::int64_t qw = c.n_heads * c.head_dim, kvw = c.n_kv_heads * c.head_dim;
  double worst = 0.0;
  worst = std::max(worst, expect_block_near(got.out, want.out, Block{"out", 0, qw, rows, qw}, atol, rtol));
  worst = std::max(worst, expect_block_near(got.lse, want.lse,
                                            Block{"lse", 0, c.seq_len, c.batch * c.n_heads, c.seq_len}, atol, rtol));
  worst = std::max(worst,
                   expect_block_near(got.grad, want.grad, Block{"dq", in.q_off, in.q_stride(), rows, qw}, atol, rtol));
  worst = std::max(
      worst, expect_block_near(got.grad, want.grad, Block{"dk", in.k_off, in.kv_stride(), rows, kvw}, atol, rtol));
  worst = std::max(
      worst, expect_block_near(got.grad, want.grad, Block{"dv", in.v_off, in.kv_stride(), rows, kvw}, atol, rtol));
  std::vector<bool> owned(in.qkv.size(), false);
  for (std::int64_t t = 0; t < rows; ++t) {
    for (std::int64_t e = 0; e < qw; ++e) owned[static_cast<std::size_t>(in.q_off + t * in.q_stride() + e)] = true;
    for (std::int64_t e = 0; e < kvw; ++e) {
      owned[static_cast<std::size_t>(in.k_off + t * in.kv_stride() + e)] = true;
      owned[static_cast<std::size_t>(in.v_off + t * in.kv_stride() + e)] = true;
    }
  }
  std::int64_t stray = 0;
  for (std::size_t i = 0; i < owned.size(); ++i) {
    if (!owned[i] && static_cast<double>(got.grad[i]) != kSentinel) ++stray;
  }
  EXPECT_EQ(stray, 0) << "backward wrote outside the q/k/v column blocks";
  return worst;
}

// Float tolerances (see the header comment).
constexpr double kFloatAtol = 2e-5;
constexpr double kFloatRtol = 1e-4;
// Double tolerances.
constexpr double kDoubleAtol = 1e-12;
constexpr double kDoubleRtol = 1e-12;

TEST(Attention, MatchesReferenceOnAwkwardSizes) {
  const std::int64_t seq_lens[] = {1, 7, 63, 64, 65, 130, 200};
  const std::vector<std::int64_t> head_dims = {32, 64, 128};
  double worst_float = 0.0, worst_double = 0.0;
  int index = 0;
  for (std::int64_t t : seq_lens) {
    const std::int64_t windows[] = {1, 3, 64, 100, kGlobalWindow, t + 13};
    for (std::int64_t w : windows) {
      // Each (T, window) pair gets one combination of the other parameters.
      const Case c = cycled_case(t, w, index, head_dims);
      ++index;
      SCOPED_TRACE(c.name());
      const Inputs in(c, 100 + static_cast<std::uint64_t>(index));
      const Result<double> want = run_ref(in);
      worst_float = std::max(worst_float, expect_result_near(in, run_kernel<float>(in), want, kFloatAtol, kFloatRtol));
      worst_double =
          std::max(worst_double, expect_result_near(in, run_kernel<double>(in), want, kDoubleAtol, kDoubleRtol));
    }
  }
  RecordProperty("worst_float_error_over_tolerance", std::to_string(worst_float));
  RecordProperty("worst_double_error_over_tolerance", std::to_string(worst_double));
  std::printf("worst error/tolerance: float %.3g, double %.3g\n", worst_float, worst_double);
}

// Every feature at once, with more heads per KV head than the sweep uses and a batch of 3.
TEST(Attention, MatchesReferenceWithAllFeatures) {
  for (std::int64_t w : {std::int64_t{17}, std::int64_t{100}, kGlobalWindow}) {
    Case c;
    c.batch = 3;
    c.seq_len = 150;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.window = w;
    c.alibi = c.doc = c.fused = true;
    SCOPED_TRACE(c.name());
    const Inputs in(c, 7);
    const Result<double> want = run_ref(in);
    expect_result_near(in, run_kernel<float>(in), want, kFloatAtol, kFloatRtol);
    expect_result_near(in, run_kernel<double>(in), want, kDoubleAtol, kDoubleRtol);
  }
}

// dq, dk, dv of L = sum(out o W) against central differences, in double.
// Error of a central difference: truncation h^2/6 * |L'''| ~ 1e-12 * O(1) with h = 1e-6, plus rounding
// ~ eps * |L evaluations' terms| / h: L sums B*T*H*hd = 288 products of O(1) size, each evaluation carries an
// absolute error ~ 1e-16 * 288 ~ 3e-14 at worst, divided by 2h gives ~1.5e-8 (typically ~1e-10). So a
// tolerance of 1e-7 absolute (+ 1e-6 relative) is safe, while a wrong gradient term (a missed key, a wrong
// ALiBi or GQA index) is off by O(1e-2..1).
TEST(Attention, GradientsMatchFiniteDifferences) {
  Case c;
  c.batch = 2;
  c.seq_len = 9;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.window = 3;
  c.alibi = true;
  c.doc = false;
  Inputs in(c, 42);
  // Short documents so that the doc mask matters at T = 9: row 0 starts documents at 0, 4; row 1 at 0, 6.
  in.doc_start.assign(static_cast<std::size_t>(c.batch * c.seq_len), 0);
  for (std::int64_t t = 0; t < c.seq_len; ++t) {
    in.doc_start[static_cast<std::size_t>(t)] = t >= 4 ? 4 : 0;
    in.doc_start[static_cast<std::size_t>(c.seq_len + t)] = t >= 6 ? 6 : 0;
  }
  const std::vector<double> weight = in.dout;  // W, random N(0, 1); dL/dout = W
  const AttentionMask mask = in.mask();
  const std::size_t n_out = static_cast<std::size_t>(c.batch * c.seq_len * c.n_heads * c.head_dim);
  std::vector<double> out(n_out), lse(static_cast<std::size_t>(c.batch * c.n_heads * c.seq_len));
  auto loss = [&](const std::vector<double>& qkv) {
    attention_forward(out.data(), lse.data(), qkv.data() + in.q_off, qkv.data() + in.k_off, qkv.data() + in.v_off,
                      in.shape, mask);
    double sum = 0.0;
    for (std::size_t i = 0; i < n_out; ++i) sum += out[i] * weight[i];
    return sum;
  };
  std::vector<double> qkv = in.qkv;
  loss(qkv);
  std::vector<double> grad(qkv.size(), kSentinel);
  attention_backward(grad.data() + in.q_off, grad.data() + in.k_off, grad.data() + in.v_off, weight.data(), out.data(),
                     lse.data(), qkv.data() + in.q_off, qkv.data() + in.k_off, qkv.data() + in.v_off, in.shape, mask);
  const double h = 1e-6;
  double worst = 0.0;
  for (std::size_t i = 0; i < qkv.size(); ++i) {
    const double saved = qkv[i];
    qkv[i] = saved + h;
    const double plus = loss(qkv);
    qkv[i] = saved - h;
    const double minus = loss(qkv);
    qkv[i] = saved;
    const double numeric = (plus - minus) / (2.0 * h);
    const double tol = 1e-7 + 1e-6 * std::fabs(numeric);
    const char* which = i < static_cast<std::size_t>(in.k_off)   ? "dq"
                        : i < static_cast<std::size_t>(in.v_off) ? "dk"
                                                                 : "dv";
    EXPECT_NEAR(grad[i], numeric, tol) << which << " at flat index " << i;
    worst = std::max(worst, std::fabs(grad[i] - numeric));
  }
  std::printf("largest |analytic - numeric| gradient difference: %.3g\n", worst);
}

// A local layer whose window covers the whole sequence is a global layer: same key tiles, same arithmetic,
// so the results are bit-identical, not merely close.
TEST(Attention, WindowAtLeastSeqLenIsBitIdenticalToGlobal) {
  for (bool features : {false, true}) {
    Case c;
    c.seq_len = 130;
    c.n_kv_heads = 2;
    c.head_dim = 32;
    c.alibi = c.doc = c.fused = features;
    c.window = kGlobalWindow;
    const Result<float> global = run_kernel<float>(Inputs(c, 5));
    for (std::int64_t w : {c.seq_len, c.seq_len + 1, c.seq_len * 10}) {
      c.window = w;
      SCOPED_TRACE(c.name());
      const Result<float> local = run_kernel<float>(Inputs(c, 5));
      EXPECT_EQ(local.out, global.out);
      EXPECT_EQ(local.lse, global.lse);
      EXPECT_EQ(local.grad, global.grad);
    }
  }
}

// Changing every input (q, k, v and the incoming gradient) of the middle document leaves every output and
// gradient of the other documents bit-identical.
TEST(Attention, DocumentMaskIsolatesDocuments) {
  for (std::int64_t w : {std::int64_t{50}, kGlobalWindow}) {
    Case c;
    c.batch = 1;
    c.seq_len = 200;  // documents [0, 37), [37, 90), [90, 200)
    c.n_kv_heads = 2;
    c.head_dim = 32;
    c.window = w;
    c.alibi = true;
    c.doc = true;
    c.fused = true;
    SCOPED_TRACE(c.name());
    const Inputs a(c, 11);
    Inputs b = a;
    Rng rng(99);
    const std::int64_t width = a.q_stride(), qw = c.n_heads * c.head_dim;
    for (std::int64_t t = 37; t < 90; ++t) {
      for (std::int64_t e = 0; e < width; ++e) b.qkv[static_cast<std::size_t>(t * width + e)] = rng.normal();
      for (std::int64_t e = 0; e < qw; ++e) b.dout[static_cast<std::size_t>(t * qw + e)] = rng.normal();
    }
    const Result<float> ra = run_kernel<float>(a), rb = run_kernel<float>(b);
    int changed_inside = 0;
    for (std::int64_t t = 0; t < c.seq_len; ++t) {
      const bool inside = t >= 37 && t < 90;
      for (std::int64_t e = 0; e < qw; ++e) {
        const auto i = static_cast<std::size_t>(t * qw + e);
        if (inside) {
          changed_inside += ra.out[i] != rb.out[i];
        } else {
          ASSERT_EQ(ra.out[i], rb.out[i]) << "out at token " << t;
        }
      }
      for (std::int64_t e = 0; e < width; ++e) {
        const auto i = static_cast<std::size_t>(t * width + e);
        if (!inside) {
          ASSERT_EQ(ra.grad[i], rb.grad[i]) << "gradient at token " << t << " column " << e;
        }
      }
      for (std::int64_t h = 0; h < c.n_heads; ++h) {
        const auto i = static_cast<std::size_t>(h * c.seq_len + t);
        if (!inside) {
          ASSERT_EQ(ra.lse[i], rb.lse[i]) << "lse at token " << t;
        }
      }
    }
    EXPECT_GT(changed_inside, 0);  // the change did reach the middle document
  }
}

// With window 1 a query sees only itself: its probability is exactly 1, so out is exactly v of its own KV
// head, lse is its own score, dq = dk = 0 (dS = P (dP - D) with dP = D) and dv sums dout over the heads of
// the group.
TEST(Attention, WindowOneReturnsOwnValue) {
  Case c;
  c.seq_len = 70;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.window = 1;
  c.alibi = true;
  c.fused = true;
  const Inputs in(c, 3);
  const Result<float> r = run_kernel<float>(in);
  const std::vector<float> qkv(in.qkv.begin(), in.qkv.end());
  const std::int64_t hd = c.head_dim, group = c.n_heads / c.n_kv_heads, stride = in.q_stride();
  for (std::int64_t t = 0; t < c.batch * c.seq_len; ++t) {
    for (std::int64_t h = 0; h < c.n_heads; ++h) {
      const std::int64_t kv = h / group;
      float score = 0.0f;
      for (std::int64_t e = 0; e < hd; ++e) {
        const float v = qkv[static_cast<std::size_t>(in.v_off + t * stride + kv * hd + e)];
        ASSERT_EQ(r.out[static_cast<std::size_t>((t * c.n_heads + h) * hd + e)], v) << "token " << t << " head " << h;
        score += qkv[static_cast<std::size_t>(in.q_off + t * stride + h * hd + e)] *
                 qkv[static_cast<std::size_t>(in.k_off + t * stride + kv * hd + e)];
      }
      const std::int64_t b = t / c.seq_len, i = t % c.seq_len;
      EXPECT_NEAR(r.lse[static_cast<std::size_t>((b * c.n_heads + h) * c.seq_len + i)],
                  score / std::sqrt(static_cast<float>(hd)), 1e-5);
    }
    for (std::int64_t kv = 0; kv < c.n_kv_heads; ++kv) {
      for (std::int64_t e = 0; e < hd; ++e) {
        double sum = 0.0;
        for (std::int64_t h = kv * group; h < (kv + 1) * group; ++h) {
          sum += in.dout[static_cast<std::size_t>((t * c.n_heads + h) * hd + e)];
        }
        EXPECT_NEAR(r.grad[static_cast<std::size_t>(in.v_off + t * stride + kv * hd + e)], sum, 1e-5);
        EXPECT_NEAR(r.grad[static_cast<std::size_t>(in.k_off + t * stride + kv * hd + e)], 0.0, 1e-5);
      }
    }
    for (std::int64_t e = 0; e < c.n_heads * hd; ++e) {
      EXPECT_NEAR(r.grad[static_cast<std::size_t>(in.q_off + t * stride + e)], 0.0, 1e-5);
    }
  }
}

// Each output element is computed by one thread in a fixed order, so results are bit-identical across runs
// and across thread counts.
TEST(Attention, DeterministicAcrossRunsAndThreadCounts) {
  Case c;
  c.seq_len = 200;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.window = 100;
  c.alibi = c.doc = true;
  const Inputs in(c, 8);
  ComputeOptions one_thread, two_threads;
  one_thread.threads = 1;
  two_threads.threads = 2;
  const Result<float> one = run_kernel<float>(in, one_thread);
  const Result<float> many = run_kernel<float>(in, two_threads);
  const Result<float> again = run_kernel<float>(in, two_threads);
  EXPECT_EQ(one.out, many.out);
  EXPECT_EQ(one.lse, many.lse);
  EXPECT_EQ(one.grad, many.grad);
  EXPECT_EQ(many.out, again.out);
  EXPECT_EQ(many.grad, again.grad);
}

// A local layer visits O(T * window) score entries, a global one O(T^2 / 2): the kernels report the key tiles
// and entries they actually computed. Each query tile visits the key range [first visible key of its first
// row, its last row], i.e. at most tile - 1 + window keys, so entries <= visible pairs + T * (tile - 1).
TEST(Attention, LocalLayerVisitsOnlyWindowTiles) {
  const std::int64_t t = 2048, tile = kAttentionTile, n_query_tiles = t / tile;
  Case c;
  c.batch = 1;
  c.seq_len = t;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.head_dim = 32;
  std::int64_t global_entries = 0;
  for (std::int64_t w : {std::int64_t{1}, std::int64_t{64}, std::int64_t{100}, std::int64_t{500}, kGlobalWindow}) {
    c.window = w;
    SCOPED_TRACE(c.name());
    const Result<float> r = run_kernel<float>(Inputs(c, 1));
    const double visible = attention_visible_pairs(t, w);
    const auto entries = static_cast<double>(r.forward_stats.score_entries);
    EXPECT_GE(entries, visible);
    EXPECT_LE(entries, visible + static_cast<double>(t * (tile - 1)));
    if (w == kGlobalWindow) {
      EXPECT_EQ(r.forward_stats.key_tiles, n_query_tiles * (n_query_tiles + 1) / 2);
      global_entries = r.forward_stats.score_entries;
    } else {
      // ceil((tile - 1 + w) / tile) key tiles per query tile.
      EXPECT_LE(r.forward_stats.key_tiles, n_query_tiles * ((tile - 1 + w + tile - 1) / tile));
    }
    // The backward pass walks exactly the forward pass's tiles.
    EXPECT_EQ(r.backward_stats.key_tiles, r.forward_stats.key_tiles);
    EXPECT_EQ(r.backward_stats.score_entries, r.forward_stats.score_entries);
  }
  // For scale: window 64 at T = 2048 is ~1/8 of the causal work.
  c.window = 64;
  const Result<float> local = run_kernel<float>(Inputs(c, 1));
  EXPECT_LT(local.forward_stats.score_entries * 7, global_entries);
}

TEST(Alibi, SlopesForPowersOfTwo) {
  const std::vector<double> s8 = alibi_slopes(8);
  ASSERT_EQ(s8.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(s8[static_cast<std::size_t>(i)], 1.0 / std::exp2(i + 1));
  const std::vector<double> s4 = alibi_slopes(4);  // 2^-2, 2^-4, 2^-6, 2^-8
  ASSERT_EQ(s4.size(), 4u);
  EXPECT_DOUBLE_EQ(s4[0], 0.25);
  EXPECT_DOUBLE_EQ(s4[3], 1.0 / 256.0);
  const std::vector<double> s1 = alibi_slopes(1);
  ASSERT_EQ(s1.size(), 1u);
  EXPECT_DOUBLE_EQ(s1[0], 1.0 / 256.0);
  const std::vector<double> s16 = alibi_slopes(16);  // 2^-0.5, 2^-1, ..., 2^-8
  EXPECT_DOUBLE_EQ(s16[0], std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(s16[15], 1.0 / 256.0);
}

TEST(Alibi, SlopesInterpolateForOtherCounts) {
  // n = 12: p = 8 gives 1/2 ... 1/256; the other 4 are the 16-series 2^(-k/2) at odd k = 1, 3, 5, 7.
  const std::vector<double> s12 = alibi_slopes(12);
  ASSERT_EQ(s12.size(), 12u);
  EXPECT_DOUBLE_EQ(s12[0], 0.5);
  EXPECT_DOUBLE_EQ(s12[7], 1.0 / 256.0);
  EXPECT_DOUBLE_EQ(s12[8], 0.70710678118654752);    // 2^-0.5
  EXPECT_DOUBLE_EQ(s12[9], 0.35355339059327376);    // 2^-1.5
  EXPECT_DOUBLE_EQ(s12[10], 0.17677669529663688);   // 2^-2.5
  EXPECT_DOUBLE_EQ(s12[11], 0.088388347648318440);  // 2^-3.5
  // n = 6: p = 4 gives 2^-2, 2^-4, 2^-6, 2^-8; then 2^-1, 2^-3 from the 8-series.
  const std::vector<double> s6 = alibi_slopes(6);
  ASSERT_EQ(s6.size(), 6u);
  EXPECT_DOUBLE_EQ(s6[4], 0.5);
  EXPECT_DOUBLE_EQ(s6[5], 0.125);
  EXPECT_THROW(alibi_slopes(0), std::exception);
}

TEST(Attention, VisiblePairsClosedForm) {
  for (std::int64_t t : {0, 1, 2, 7, 64, 100, 1000}) {
    for (std::int64_t w : {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}, std::int64_t{64}, std::int64_t{999},
                           std::int64_t{1000}, std::int64_t{5000}, kGlobalWindow}) {
      double brute = 0.0;
      for (std::int64_t i = 0; i < t; ++i) brute += static_cast<double>(i - first_visible_key(i, w) + 1);
      EXPECT_EQ(attention_visible_pairs(t, w), brute) << "T=" << t << " window=" << w;
    }
  }
  EXPECT_EQ(attention_visible_pairs(5, 2), 9.0);  // 1 + 2 + 2 + 2 + 2
  EXPECT_EQ(attention_visible_pairs(4096, kGlobalWindow), 4096.0 * 4097.0 / 2.0);
}

TEST(Attention, RejectsBadArguments) {
  std::vector<float> buf(64, 0.0f);
  AttentionShape shape{1, 2, 3, 2, 4, 0, 0};  // 3 heads cannot share 2 kv heads
  EXPECT_THROW(attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), shape,
                                 AttentionMask{kGlobalWindow}),
               std::exception);
  shape = AttentionShape{1, 2, 2, 2, 4, 0, 0};
  EXPECT_THROW(attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), shape, AttentionMask{0}),
               std::exception);
  const std::int32_t bad_doc[2] = {0, 2};  // token 1 cannot start its document at 2
  EXPECT_THROW(attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), shape,
                                 AttentionMask{kGlobalWindow, bad_doc}),
               std::exception);
}

// ---- every kernel variant against the reference ----------------------------------------------------------------
// The tests above run the default variant (the widest this CPU has). These run each variant the CPU can execute:
// scalar, AVX2, AVX-512 (skipped without AVX-512 F/BW/VL/DQ), and the AVX-512 layout compiled for AVX2, which
// exercises the 16-lane padding and 12 x 2 blocking of the AVX-512 kernels where AVX-512 itself is missing. The
// tolerances are the float ones above: every variant computes the same sums (in other orders, with or without
// fused multiply-adds), so the same error analysis holds.
}  // namespace

// For test names and messages (gtest finds it next to the type).
void PrintTo(const AttentionKernel& k, std::ostream* os) { *os << to_string(k); }

namespace {

class AttentionKernelTest : public ::testing::TestWithParam<AttentionKernel> {
 protected:
  void SetUp() override {
    const AttentionKernel k = GetParam();
    if (k == AttentionKernel::kAvx512 && !simd_path_supported(SimdPath::kAvx512)) {
      GTEST_SKIP() << "this CPU lacks AVX-512 (F/BW/VL/DQ): the AVX-512 kernels cannot run here; their tiling and "
                      "blocking are covered by the avx512-layout-on-avx2 variant";
    }
    if ((k == AttentionKernel::kAvx2 || k == AttentionKernel::kAvx512OnAvx2) && !simd_path_supported(SimdPath::kAvx2)) {
      GTEST_SKIP() << "this CPU lacks AVX2/FMA";
    }
    options_.attention = k;
    ASSERT_EQ(resolve_attention_kernel(options_), k);
  }
  // The options of every call of a test: the kernel under test (threads: as the caller's default).
  ComputeOptions options_;
  ComputeOptions with_threads(int n) const {
    ComputeOptions o = options_;
    o.threads = n;
    return o;
  }
};

TEST_P(AttentionKernelTest, MatchesReferenceOnAwkwardSizes) {
  const std::int64_t seq_lens[] = {1, 7, 17, 64, 65, 130, 200};
  const std::vector<std::int64_t> head_dims = {32, 64, 128, 24};  // 24: not a multiple of the 16 AVX-512 lanes
  double worst = 0.0;
  int index = 0;
  for (std::int64_t t : seq_lens) {
    for (std::int64_t w : {std::int64_t{1}, std::int64_t{3}, std::int64_t{64}, std::int64_t{100}, kGlobalWindow}) {
      const Case c = cycled_case(t, w, index, head_dims);
      ++index;
      SCOPED_TRACE(c.name());
      const Inputs in(c, 500 + static_cast<std::uint64_t>(index));
      worst =
          std::max(worst, expect_result_near(in, run_kernel<float>(in, options_), run_ref(in), kFloatAtol, kFloatRtol));
    }
  }
  std::printf("%s: worst error/tolerance %.3g\n", to_string(GetParam()), worst);
}

// One sequence over one KV head: the backward pass splits the query tiles into chunks whose dK/dV partials are
// added afterwards (fewer (batch, kv head) pairs than backward tasks wanted). Results must match the reference
// and be bit-identical for 1 and 2 threads.
TEST_P(AttentionKernelTest, ChunkedBackwardMatchesReferenceForAnyThreadCount) {
  for (std::int64_t w : {std::int64_t{70}, kGlobalWindow}) {
    Case c;
    c.batch = 1;
    c.seq_len = 333;  // 6 query tiles, the last one partial
    c.n_heads = 3;
    c.n_kv_heads = 1;
    c.head_dim = 64;
    c.window = w;
    c.alibi = true;
    c.doc = true;
    c.fused = true;
    SCOPED_TRACE(c.name());
    const Inputs in(c, 77);
    const Result<float> one = run_kernel<float>(in, with_threads(1));
    const Result<float> two = run_kernel<float>(in, with_threads(2));
    expect_result_near(in, two, run_ref(in), kFloatAtol, kFloatRtol);
    EXPECT_EQ(one.out, two.out);
    EXPECT_EQ(one.lse, two.lse);
    EXPECT_EQ(one.grad, two.grad);
  }
}

// A long local layer: many tiles whose window edge cuts through a tile (window not a multiple of the tile).
TEST_P(AttentionKernelTest, LongLocalLayerMatchesReference) {
  Case c;
  c.batch = 1;
  c.seq_len = 700;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.window = 150;
  const Inputs in(c, 123);
  expect_result_near(in, run_kernel<float>(in, options_), run_ref(in), kFloatAtol, kFloatRtol);
}

std::string kernel_name(const ::testing::TestParamInfo<AttentionKernel>& info) {
  std::string s = to_string(info.param);
  for (char& ch : s) {
    if (ch == '-') ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Variants, AttentionKernelTest,
                         ::testing::Values(AttentionKernel::kScalar, AttentionKernel::kAvx2, AttentionKernel::kAvx512,
                                           AttentionKernel::kAvx512OnAvx2),
                         kernel_name);

// ---- queries over a shifted range of keys (AttentionShape::kv_len, q_pos) ---------------------------------------
// A sequence split across processes attends from its slice's queries to a halo of earlier keys plus its own
// (Tk = H + S, q_pos = H), or to another slice's keys only (Tk = S, q_pos >= Tk: every key lies before every
// query). Each such call must equal the reference with the same offsets, and the reference with offsets must
// equal the matching rows of one call over the whole sequence (the property context parallelism rests on).

// A whole sequence of `total` tokens (q, k, v separate, [B, total, *]); a call over queries [q0, q0 + nq) and
// keys [k0, k0 + nk) (k0 <= q0) takes the rows it names, q_pos = q0 - k0, doc_start shifted to key coordinates
// and clamped at 0 (a document that began before the keys).
struct Sliced {
  AttentionShape shape;
  std::vector<double> q, k, v, dout;
  std::vector<std::int32_t> doc;
};

Sliced slice_of(const Inputs& whole, std::int64_t q0, std::int64_t nq, std::int64_t k0, std::int64_t nk) {
  const Case& c = whole.c;
  const std::int64_t qw = c.n_heads * c.head_dim, kvw = c.n_kv_heads * c.head_dim, total = c.seq_len;
  Sliced s;
  s.shape = AttentionShape{c.batch, nq, c.n_heads, c.n_kv_heads, c.head_dim, 0, 0, nk, q0 - k0};
  for (std::int64_t b = 0; b < c.batch; ++b) {
    for (std::int64_t t = 0; t < nq; ++t) {
      const std::int64_t row = b * total + q0 + t;
      for (std::int64_t e = 0; e < qw; ++e) {
        s.q.push_back(whole.qkv[static_cast<std::size_t>(whole.q_off + row * whole.q_stride() + e)]);
        s.dout.push_back(whole.dout[static_cast<std::size_t>(row * qw + e)]);
      }
      if (!whole.doc_start.empty()) {
        s.doc.push_back(
            static_cast<std::int32_t>(std::max<std::int64_t>(0, whole.doc_start[static_cast<std::size_t>(row)] - k0)));
      }
    }
    for (std::int64_t t = 0; t < nk; ++t) {
      const std::int64_t row = b * total + k0 + t;
      for (std::int64_t e = 0; e < kvw; ++e) {
        s.k.push_back(whole.qkv[static_cast<std::size_t>(whole.k_off + row * whole.kv_stride() + e)]);
        s.v.push_back(whole.qkv[static_cast<std::size_t>(whole.v_off + row * whole.kv_stride() + e)]);
      }
    }
  }
  return s;
}

// Forward and backward of a sliced call; grad = dq | dk | dv back to back.
template <typename T>
Result<T> run_sliced(const Sliced& s, const AttentionMask& whole_mask, bool reference,
                     const ComputeOptions& options = {}) {
  const AttentionMask mask{whole_mask.window, s.doc.empty() ? nullptr : s.doc.data(), whole_mask.alibi_slopes};
  std::vector<T> q(s.q.begin(), s.q.end()), k(s.k.begin(), s.k.end()), v(s.v.begin(), s.v.end());
  std::vector<T> dout(s.dout.begin(), s.dout.end());
  Result<T> r;
  r.out.assign(s.q.size(), T(kSentinel));
  r.lse.assign(static_cast<std::size_t>(s.shape.batch * s.shape.n_heads * s.shape.seq_len), T(kSentinel));
  r.grad.assign(s.q.size() + 2 * s.k.size(), T(kSentinel));
  T* dq = r.grad.data();
  T* dk = dq + s.q.size();
  T* dv = dk + s.k.size();
  if constexpr (std::is_same_v<T, double>) {
    if (reference) {
      ref::attention_forward(r.out.data(), r.lse.data(), q.data(), k.data(), v.data(), s.shape, mask);
      ref::attention_backward(dq, dk, dv, dout.data(), r.out.data(), r.lse.data(), q.data(), k.data(), v.data(),
                              s.shape, mask);
      return r;
    }
  }
  attention_forward(r.out.data(), r.lse.data(), q.data(), k.data(), v.data(), s.shape, mask, options);
  attention_backward(dq, dk, dv, dout.data(), r.out.data(), r.lse.data(), q.data(), k.data(), v.data(), s.shape, mask,
                     options);
  return r;
}

// Compares the sliced kernel result with the sliced reference: out and lse (rows that see no key: out 0, lse
// -inf in both), dq, dk, dv.
template <typename A>
void expect_sliced_near(const Sliced& s, const Result<A>& got, const Result<double>& want, double atol, double rtol) {
  const std::int64_t qn = static_cast<std::int64_t>(s.q.size()), kn = static_cast<std::int64_t>(s.k.size());
  expect_block_near(got.out, want.out, Block{"out", 0, qn, 1, qn}, atol, rtol);
  std::vector<double> want_lse = want.lse;
  std::vector<A> got_lse = got.lse;
  std::int64_t empty_rows = 0;
  for (std::size_t i = 0; i < want_lse.size(); ++i) {
    if (std::isinf(want_lse[i])) {
      ++empty_rows;
      EXPECT_TRUE(std::isinf(static_cast<double>(got_lse[i])) && got_lse[i] < 0) << "lse row " << i;
      want_lse[i] = 0.0;
      got_lse[i] = A(0);
    }
  }
  const std::int64_t ln = static_cast<std::int64_t>(want_lse.size());
  expect_block_near(got_lse, want_lse, Block{"lse", 0, ln, 1, ln}, atol, rtol);
  expect_block_near(got.grad, want.grad, Block{"dq", 0, qn, 1, qn}, atol, rtol);
  expect_block_near(got.grad, want.grad, Block{"dk", qn, kn, 1, kn}, atol, rtol);
  expect_block_near(got.grad, want.grad, Block{"dv", qn + kn, kn, 1, kn}, atol, rtol);
  ::testing::Test::RecordProperty("empty_rows", std::to_string(empty_rows));
}

// The (q0, nq, k0, nk) slices of a sequence of 200 split into slices of 70 (the last one 60): halos of every
// size up to a whole previous slice and more, and the blocks of every earlier slice.
struct SliceCall {
  std::int64_t q0, nq, k0, nk;
};
std::vector<SliceCall> slice_calls(std::int64_t window) {
  std::vector<SliceCall> calls;
  const std::int64_t starts[] = {0, 70, 140}, total = 200;
  for (std::int64_t q0 : starts) {
    const std::int64_t nq = std::min<std::int64_t>(70, total - q0);
    if (window != kGlobalWindow) {
      const std::int64_t halo = std::min(window - 1, q0);
      calls.push_back({q0, nq, q0 - halo, halo + nq});
    } else {
      for (std::int64_t k0 : starts) {
        if (k0 <= q0) calls.push_back({q0, nq, k0, k0 == q0 ? nq : 70});
      }
    }
  }
  return calls;
}

TEST(AttentionOffsets, ReferenceSlicesEqualTheWholeSequence) {
  // Halo calls with the whole window inside the keys give exactly the rows of the whole call: the keys a row
  // may see are all present. (Block calls over a part of the keys are checked by merging in the context-parallel
  // tests.)
  for (std::int64_t w : {std::int64_t{1}, std::int64_t{30}, std::int64_t{70}, std::int64_t{71}, std::int64_t{150}}) {
    Case c;
    c.seq_len = 200;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.window = w;
    c.alibi = true;
    c.doc = true;
    SCOPED_TRACE(c.name());
    const Inputs whole(c, 31);
    const Result<double> full = run_ref(whole);
    for (const SliceCall& call : slice_calls(w)) {
      const Sliced s = slice_of(whole, call.q0, call.nq, call.k0, call.nk);
      const Result<double> part = run_sliced<double>(s, whole.mask(), true);
      const std::int64_t qw = c.n_heads * c.head_dim;
      for (std::int64_t b = 0; b < c.batch; ++b) {
        for (std::int64_t t = 0; t < call.nq; ++t) {
          for (std::int64_t e = 0; e < qw; ++e) {
            const double want = full.out[static_cast<std::size_t>((b * c.seq_len + call.q0 + t) * qw + e)];
            ASSERT_NEAR(part.out[static_cast<std::size_t>((b * call.nq + t) * qw + e)], want, 1e-12);
          }
          for (std::int64_t h = 0; h < c.n_heads; ++h) {
            ASSERT_NEAR(part.lse[static_cast<std::size_t>((b * c.n_heads + h) * call.nq + t)],
                        full.lse[static_cast<std::size_t>((b * c.n_heads + h) * c.seq_len + call.q0 + t)], 1e-12);
          }
        }
      }
    }
  }
}

// Every kernel variant, float and double, against the reference with the same offsets: halos smaller than,
// equal to and larger than a slice, blocks wholly before the queries, GQA, ALiBi, documents (whose rows see no
// key of an earlier block when the document begins after it).
TEST_P(AttentionKernelTest, OffsetKeysMatchReference) {
  for (std::int64_t w : {std::int64_t{1}, std::int64_t{30}, std::int64_t{71}, std::int64_t{150}, kGlobalWindow}) {
    Case c;
    c.seq_len = 200;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 24;
    c.window = w;
    c.alibi = w % 2 == 1;
    c.doc = true;
    const Inputs whole(c, 57);
    for (const SliceCall& call : slice_calls(w)) {
      SCOPED_TRACE(c.name() + " queries " + std::to_string(call.q0) + "+" + std::to_string(call.nq) + " keys " +
                   std::to_string(call.k0) + "+" + std::to_string(call.nk));
      const Sliced s = slice_of(whole, call.q0, call.nq, call.k0, call.nk);
      const Result<double> want = run_sliced<double>(s, whole.mask(), true);
      expect_sliced_near(s, run_sliced<float>(s, whole.mask(), false, options_), want, kFloatAtol, kFloatRtol);
      if (GetParam() == AttentionKernel::kScalar) {
        expect_sliced_near(s, run_sliced<double>(s, whole.mask(), false, options_), want, kDoubleAtol, kDoubleRtol);
      }
    }
  }
}

// The workspace estimate covers what a call allocates: it grows with T and is positive.
TEST(Attention, WorkspaceBytesGrowWithLength) {
  const AttentionShape a{1, 1000, 8, 4, 64, 0, 0}, b{1, 4000, 8, 4, 64, 0, 0};
  const AttentionMask global{kGlobalWindow};
  const std::size_t wa = attention_workspace_bytes(a, global), wb = attention_workspace_bytes(b, global);
  // At least packed K, V, dK, dV (4 x T x kv_dim) and Q^T, dO^T (2 x T x q_dim) floats.
  EXPECT_GE(wa, static_cast<std::size_t>(4 * 1000 * 256 + 2 * 1000 * 512) * sizeof(float));
  EXPECT_GT(wb, 3 * wa);
}

}  // namespace
}  // namespace zebra
