// zebra quantize's writer (io/gguf_export.hpp): a model written as a `zebra` GGUF reads back as the same model
// (config, layer pattern, RoPE scaling; every tensor equal to its own quantize -> dequantize round trip, Q/K rows
// back in rotate-half order), and what it cannot write is refused before a file exists.
#include "zebra/io/gguf_export.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "io/io_test_util.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/ref/weight_matmul_ref.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::expect_error;
using test::TempDir;

ModelConfig zebra_config() {
  ModelConfig c;
  c.vocab_size = 48;
  c.d_model = 64;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.ffn_dim = 96;
  c.max_seq_len = 256;
  c.window = 7;
  c.layer_types = {LayerType::kGlobal, LayerType::kLocal, LayerType::kLocal, LayerType::kGlobal};
  c.rope_scaling = RopeScaling::kYarn;
  c.rope_scaling_factor = 4.0;
  c.rope_original_max_positions = 64;
  c.tie_embeddings = false;
  c.resolve();
  return c;
}

ParameterSet<float> random_params(const ModelConfig& c) {
  ParameterSet<float> p(c);
  Rng rng(11);
  for (const TensorInfo& t : p.layout.tensors) {
    float* x = p.tensor(t);
    for (std::size_t i = 0; i < t.numel; ++i) x[i] = static_cast<float>(0.1 * rng.normal());
  }
  return p;
}

TEST(GgufExport, ReadsBackAsTheSameModel) {
  const TempDir dir;
  const ModelConfig c = zebra_config();
  const ParameterSet<float> params = random_params(c);
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    SCOPED_TRACE(to_string(dtype));
    const std::string path = dir.file("m.gguf");
    GgufExportOptions o;
    o.matrix_dtype = dtype;
    o.embed_dtype = DType::kQ8_0;
    write_model_gguf(path, params, {}, o);
    EXPECT_EQ(GgufFile::open(path).get_string("general.architecture"), "zebra");

    const LoadedModel m = load_model_for_inference(path, std::nullopt, "", std::nullopt);
    const ModelConfig& r = m.config();
    EXPECT_EQ(r.layer_types, c.layer_types);
    EXPECT_EQ(r.window, c.window);
    EXPECT_EQ(r.rope_scaling, RopeScaling::kYarn);
    EXPECT_EQ(r.rope_scaling_factor, 4.0);
    EXPECT_EQ(r.rope_original_max_positions, 64);
    EXPECT_EQ(r.tie_embeddings, false);
    EXPECT_EQ(r.n_kv_heads, 2);
    for (const TensorInfo& t : params.layout.tensors) {
      const StoredTensor* s = m.store->find(t.name);
      ASSERT_NE(s, nullptr) << t.name;
      const bool matrix = t.shape.size() == 2;
      const bool embed = t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight";
      const DType want = !matrix ? DType::kF32 : embed ? DType::kQ8_0 : dtype;
      ASSERT_EQ(s->dtype, quant::repacked_dtype(want)) << t.name;  // the loader repacks for the kernels
      const std::int64_t cols = t.shape.back(), rows = matrix ? t.shape[0] : 1;
      const WeightMatrix w{s->dtype, s->data().data(), rows, cols, dtype_row_bytes(s->dtype, cols)};
      std::vector<std::uint8_t> q(dtype_row_bytes(want, cols));
      std::vector<float> expect(static_cast<std::size_t>(cols));
      std::vector<double> got(static_cast<std::size_t>(cols));
      for (std::int64_t row = 0; row < rows; ++row) {
        // The same row's round trip: Q/K rows must come back in their original (rotate-half) order.
        quant::quantize_row(want, params.tensor(t) + row * cols, q.data(), cols);
        quant::dequantize_row(want, q.data(), expect.data(), cols);
        ref::weight_row(got.data(), w, row);
        for (std::int64_t k = 0; k < cols; ++k) {
          ASSERT_EQ(got[static_cast<std::size_t>(k)], expect[static_cast<std::size_t>(k)]) << t.name << " row " << row;
        }
      }
    }
  }
}

TEST(GgufExport, RefusesWhatItCannotWriteBeforeWriting) {
  const TempDir dir;
  const std::string path = dir.file("m.gguf");
  ModelConfig c = zebra_config();
  c.pos_embedding = PosEmbedding::kAlibi;
  c.resolve();
  expect_error([&] { write_model_gguf(path, random_params(c), {}, GgufExportOptions{}); }, {"RoPE"});
  ModelConfig narrow = zebra_config();
  narrow.ffn_dim = 40;  // down_proj's 40 columns are not whole 32-value blocks
  narrow.resolve();
  expect_error([&] { write_model_gguf(path, random_params(narrow), {}, GgufExportOptions{}); }, {"40 columns", "Q8_0"});
  GgufExportOptions k;
  k.matrix_dtype = DType::kQ4_K;
  expect_error([&] { write_model_gguf(path, random_params(zebra_config()), {}, k); }, {"Q4_K"});
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace zebra
