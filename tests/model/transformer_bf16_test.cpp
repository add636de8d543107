// RunOptions::bf16_matmul: BF16 inputs with fp32 accumulation in every matrix product. The loss and gradients
// move by about bf16's relative precision (2^-8 per rounded input, averaged over many products), not more.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "zebra/model/transformer.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

TEST(TransformerBf16, LossAndGradientsStayCloseToFp32) {
  ModelConfig c;
  c.vocab_size = 97;
  c.d_model = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 96;
  c.group_size = 2;
  c.window = 8;
  c.resolve();
  RunOptions fp32, bf16;
  bf16.bf16_matmul = true;
  Transformer<float> a(c, fp32), b(c, bf16);
  init_parameters(a.params(), 5, 0.1);
  init_parameters(b.params(), 5, 0.1);
  const std::int64_t t = 40;
  std::vector<std::int32_t> tokens(2 * t), targets(2 * t);
  Rng rng(6);
  for (auto& x : tokens) x = static_cast<std::int32_t>(rng.below(97));
  for (auto& x : targets) x = static_cast<std::int32_t>(rng.below(97));
  const BatchView batch{2, t, tokens.data(), targets.data(), nullptr};
  a.zero_grads();
  b.zero_grads();
  const double la = a.forward_backward(batch).mean(), lb = b.forward_backward(batch).mean();
  EXPECT_NE(la, lb);  // the option does change the arithmetic
  EXPECT_NEAR(lb, la, 1e-2 * la);
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.grads().size(); ++i) {
    dot += static_cast<double>(a.grads()[i]) * b.grads()[i];
    na += static_cast<double>(a.grads()[i]) * a.grads()[i];
    nb += static_cast<double>(b.grads()[i]) * b.grads()[i];
  }
  // Cosine similarity of the whole gradient: errors ~1e-2 relative per element give ~1 - 1e-4.
  EXPECT_GT(dot / std::sqrt(na * nb), 0.999);
  EXPECT_GT(Transformer<float>::activation_bytes(c, 2, t, bf16), Transformer<float>::activation_bytes(c, 2, t, fp32));
}

}  // namespace
}  // namespace zebra
