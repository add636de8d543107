// Typed weights (model/weights.hpp): a forward pass over borrowed weights of any stored dtype.
//
// bf16/f16 stores hold each matrix element rounded once (relative error <= 2^-9 for bf16, 2^-12 for f16 in the
// normal range). A model over such a store must compute exactly what the fp32 model computes over the same
// rounded values: the kernels widen the 16-bit values exactly (bf16/f16 -> f32 is exact) and accumulate in fp32,
// so the only differences are the order of fp32 sums (blocking), which the float argument of kv_cache_test.cpp
// bounds by 2e-4 abs + 2e-4 rel on the logits. A kernel that used the unrounded values, or rounded twice, moves
// the loss by about the storage rounding times the gain of the chain (~1e-3 here), which the direct f32
// comparison below shows is far larger than the tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "zebra/model/generator.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/model/weights.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

ParameterSet<float> make_params() {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 32;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 40;
  c.max_seq_len = 64;
  c.window = 5;
  c.group_size = 3;
  c.tie_embeddings = false;
  c.resolve();
  ParameterSet<float> p(c);
  init_parameters(p, 11, 0.2);
  return p;
}

// The parameters with every matrix element replaced by its value after storage in `dt` (norms stay exact).
ParameterSet<float> rounded(const ParameterSet<float>& p, DType dt) {
  ParameterSet<float> r = p;
  for (const TensorInfo& t : r.layout.tensors) {
    if (t.shape.size() != 2) continue;
    float* x = r.tensor(t);
    for (std::size_t i = 0; i < t.numel; ++i) {
      x[i] = dt == DType::kBF16 ? bf16_to_float(float_to_bf16(x[i])) : f16_to_float(float_to_f16(x[i]));
    }
  }
  return r;
}

std::vector<std::int32_t> tokens(std::int64_t n) {
  Rng rng(3);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng.below(37));
  return t;
}

std::vector<float> logits_of(Transformer<float>& m, const std::vector<std::int32_t>& toks) {
  const auto n = static_cast<std::int64_t>(toks.size());
  m.forward_hidden(BatchView{1, n, toks.data(), nullptr, nullptr});
  std::vector<float> out(static_cast<std::size_t>(n * 37));
  for (std::int64_t r = 0; r < n; ++r) m.logits_for_row(r, out.data() + r * 37);
  return out;
}

double violation(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / (2e-4 + 2e-4 * std::abs(double(b[i]))));
  }
  return worst;
}

TEST(Weights, BorrowedF32StoreEqualsTheOwningModelAndAllocatesNoGradients) {
  ScopedThreads single_thread(1);
  const ParameterSet<float> p = make_params();
  const WeightStore store = store_from_params(p, DType::kF32);
  const ModelWeights<float> w = weights_of(store);
  Transformer<float> borrowed(w), owning(p);
  const auto t = tokens(19);
  EXPECT_EQ(logits_of(borrowed, t), logits_of(owning, t));  // same values, same products: bit for bit
  EXPECT_FALSE(borrowed.has_gradients());
  EXPECT_FALSE(borrowed.owns_parameters());
  EXPECT_THROW(borrowed.params(), Error);
  EXPECT_FALSE(owning.has_gradients());  // forward only so far
}

class SixteenBit : public ::testing::TestWithParam<DType> {};

TEST_P(SixteenBit, ModelOverStoredWeightsEqualsFp32ModelOverTheRoundedValues) {
  ScopedThreads single_thread(1);
  const ParameterSet<float> p = make_params();
  const WeightStore store = store_from_params(p, GetParam());
  EXPECT_LT(store.bytes(), p.data.size() * sizeof(float) * 6 / 10);  // matrices at 2 bytes, norms at 4
  const ModelWeights<float> w = weights_of(store);
  const ParameterSet<float> r = rounded(p, GetParam());
  Transformer<float> stored(w), reference(r), unrounded(p);
  const auto t = tokens(23);
  const auto ref = logits_of(reference, t);
  EXPECT_LE(violation(logits_of(stored, t), ref), 1.0);
  // The test can tell: the unrounded fp32 model is far outside the tolerance.
  EXPECT_GT(violation(logits_of(unrounded, t), ref), 1.0);

  // Cached decoding over the same store: the same logits at the last position.
  InferenceSession<float> session(w);
  const auto last = session.prefill(t, 4);
  const std::vector<float> last_v(last.begin(), last.end());
  const std::vector<float> ref_last(ref.end() - 37, ref.end());
  EXPECT_LE(violation(last_v, ref_last), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SixteenBit, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace zebra
