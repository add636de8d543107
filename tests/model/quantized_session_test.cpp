// Inference on block-quantized weights and with 16-bit KV caches (model/generator.hpp over a WeightStore).
//
// Decode against a one-shot pass on the same quantized weights: up to kGemvMaxRows (8) rows, a product runs the
// matrix-vector kernels, which quantize each activation row on its own, so a row's products are the same
// integer dot products and fp32 roundings whether it is decoded alone or with the other rows of a chunk
// (ops/simd/quant_kernels.hpp). What differs is attention: the one-shot pass runs the tiled training kernel,
// decode the split-K decode kernel, both fp32 within 1e-4 relative of the exact result
// (tests/ops/attention_cached_test.cpp); as in KvCache.FloatSessionMatchesFloatForward, 2e-4 of the logits
// covers that through three layers and the head. A wrong row, block or cache slot moves logits by O(1).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "zebra/model/generator.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/model/weights.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 64;  // every matrix's columns a multiple of the 32-value blocks
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 96;
  c.max_seq_len = 64;
  c.window = 3;
  c.layer_types = {LayerType::kGlobal, LayerType::kLocal, LayerType::kLocal};
  c.tie_embeddings = true;
  c.resolve();
  return c;
}

// The parameters with every matrix quantized to dtype (norms stay F32), then q|k|v and gate|up co-located as
// the loaders leave them.
WeightStore quantized_store(const ParameterSet<float>& params, DType dtype) {
  WeightStore store = store_from_params(params, DType::kF32);
  for (StoredTensor& t : store.tensors) {
    if (t.shape.size() != 2) continue;
    const std::int64_t rows = t.shape[0], cols = t.shape[1];
    const std::size_t rb = dtype_row_bytes(dtype, cols);
    AlignedBuffer<std::uint8_t> q(rb * static_cast<std::size_t>(rows));
    const auto* src = reinterpret_cast<const float*>(t.bytes.data());
    for (std::int64_t r = 0; r < rows; ++r) quant::quantize_row(dtype, src + r * cols, q.data() + rb * r, cols);
    t.bytes = std::move(q);
    t.dtype = dtype;
  }
  prepare_for_inference(store);
  return store;
}

std::vector<std::int32_t> tokens_of(std::int64_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng.below(40));
  return t;
}

double worst_violation(const std::vector<float>& got, const std::vector<float>& ref, double atol, double rtol) {
  double worst = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - ref[i]) / (atol + rtol * std::abs(ref[i])));
  }
  return worst;
}

TEST(QuantizedSession, DecodeEqualsOneShotPassOnTheSameQuantizedWeights) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 7, 0.3);
  const std::int64_t n = kGemvMaxRows;
  const auto tokens = tokens_of(n, 3);
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    SCOPED_TRACE(to_string(dtype));
    const WeightStore store = quantized_store(model.params(), dtype);
    const ModelWeights<float> w = weights_of(store);
    ASSERT_GT(w.layers[0].wqkv.rows, 0) << "q|k|v co-located and fused";
    ASSERT_EQ(w.layers[0].wqkv.dtype, quant::repacked_dtype(dtype)) << "and repacked";
    InferenceSession<float> one_shot(w);
    std::vector<float> ref;
    one_shot.prefill(tokens, n, &ref);
    InferenceSession<float> stepwise(w);
    std::vector<float> got;
    for (std::int32_t t : tokens) {
      const auto l = stepwise.decode(t);
      got.insert(got.end(), l.begin(), l.end());
    }
    double scale = 0.0;
    for (float x : ref) scale = std::max(scale, static_cast<double>(std::abs(x)));
    EXPECT_LE(worst_violation(got, ref, 2e-4 * scale, 2e-4), 1.0);
    // And the quantized model is not the fp32 one: Q4 moves logits by far more than the tolerance.
    if (dtype != DType::kQ8_0) {
      InferenceSession<float> dense(model.params());
      std::vector<float> f32;
      dense.prefill(tokens, n, &f32);
      EXPECT_GT(worst_violation(got, f32, 2e-4 * scale, 2e-4), 1.0);
    }
  }
}

// A 16-bit cache: half the bytes of an fp32 one at every length, and the same text up to the rounding of the
// stored keys and values: each is within 2^-11 (f16) / 2^-8 (bf16) relative, which moves these logits (O(1),
// three layers) by well under 1e-2 of their scale while a wrong slot or an unconverted buffer moves them by
// O(1).
TEST(QuantizedSession, SixteenBitCacheHalvesTheBytesAndKeepsTheLogits) {
  ScopedThreads single_thread(1);
  Transformer<float> model(small_config());
  init_parameters(model.params(), 9, 0.3);
  const auto tokens = tokens_of(30, 4);
  std::vector<float> ref;
  InferenceSession<float> f32(model.params());
  for (std::int32_t t : tokens) {
    const auto l = f32.decode(t);
    ref.insert(ref.end(), l.begin(), l.end());
  }
  double scale = 0.0;
  for (float x : ref) scale = std::max(scale, static_cast<double>(std::abs(x)));
  for (DType kv : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(to_string(kv));
    SessionOptions o;
    o.kv_dtype = kv;
    InferenceSession<float> s(model.params(), o);
    std::vector<float> got;
    for (std::int32_t t : tokens) {
      const auto l = s.decode(t);
      got.insert(got.end(), l.begin(), l.end());
    }
    const double tol = (kv == DType::kF16 ? 0x1.0p-11 : 0x1.0p-8) * 16 * scale;
    EXPECT_LE(worst_violation(got, ref, tol, 0.0), 1.0);
    EXPECT_EQ(2 * s.kv_cache().bytes_allocated(), f32.kv_cache().bytes_allocated());
  }
  SessionOptions bad;
  bad.kv_dtype = DType::kQ8_0;
  EXPECT_THROW(InferenceSession<float>(model.params(), bad), Error);
}

}  // namespace
}  // namespace zebra
