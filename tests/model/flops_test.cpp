#include <gtest/gtest.h>

#include "zebra/model/flops.hpp"
#include "zebra/model/params.hpp"

namespace zebra {
namespace {

ModelConfig eight_layers() {
  ModelConfig c;
  c.vocab_size = 1000;
  c.d_model = 64;
  c.n_layers = 8;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 128;
  c.group_size = 4;
  c.window = 512;
  c.resolve();
  return c;
}

// Attention FLOPs by brute force over (query, key) pairs, against the closed form.
TEST(Flops, AttentionCountsVisiblePairs) {
  ModelConfig c = eight_layers();
  for (std::int64_t t : {1, 100, 512, 513, 2000}) {
    double pairs_local = 0, pairs_global = 0;
    for (std::int64_t i = 0; i < t; ++i) {
      pairs_global += static_cast<double>(i + 1);
      pairs_local += static_cast<double>(std::min<std::int64_t>(i + 1, c.window));
    }
    EXPECT_DOUBLE_EQ(layer_attention_flops(c, 0, t), 4.0 * 64 * pairs_global);
    EXPECT_DOUBLE_EQ(layer_attention_flops(c, 1, t), 4.0 * 64 * pairs_local);
  }
}

TEST(Flops, ProjectionsAndHead) {
  ModelConfig c = eight_layers();
  FlopCount f = forward_flops(c, 128);
  // per layer: QKV 2*64*(64+32+32), Wo 2*64*64, MLP 3 * 2*64*128
  EXPECT_DOUBLE_EQ(f.projections, 8.0 * (2 * 64 * 128 + 2 * 64 * 64 + 6 * 64 * 128));
  EXPECT_DOUBLE_EQ(f.lm_head, 2.0 * 64 * 1000);
  EXPECT_DOUBLE_EQ(f.training(), 3.0 * f.forward());
}

TEST(Flops, KvCacheKeepsOnlyTheWindowInLocalLayers) {
  ModelConfig c = eight_layers();
  // 2 global layers keep 16384 positions, 6 local keep 512; K and V of kv_dim 32, 4 bytes.
  EXPECT_EQ(kv_cache_bytes(c, 16384, 4), (2 * 16384 + 6 * 512) * 2 * 32 * 4);
  EXPECT_EQ(kv_cache_bytes(c.full_attention_twin(), 16384, 4), 8 * 16384 * 2 * 32 * 4);
  EXPECT_EQ(kv_cache_bytes(c, 100, 2), 8 * 100 * 2 * 32 * 2);  // context shorter than the window
}

TEST(Flops, ParameterCountMatchesLayout) {
  ModelConfig c = eight_layers();
  const std::int64_t per_layer = 64 + (64 + 32 + 32) * 64 + 64 * 64 + 64 + 3 * 128 * 64;
  EXPECT_EQ(parameter_count(c), 1000 * 64 + 8 * per_layer + 64);
  c.tie_embeddings = false;
  EXPECT_EQ(parameter_count(c), 2 * 1000 * 64 + 8 * per_layer + 64);
}

}  // namespace
}  // namespace zebra
