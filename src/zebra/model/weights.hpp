// The weights a forward pass reads, as typed views (DESIGN.md §2: weight types are a run-time property).
//
// Matrices are WeightMatrix views (ops/weight.hpp): any dtype the products support (f32, f64, bf16, f16 and
// the block-quantized types as kernels for them exist). Norm gains and learned positions are plain arrays of
// the compute type T: they are small and read on every row.
//
// ModelWeights never owns memory. Its storage is either a ParameterSet<T> (training, dense, every view F32/F64
// into the one parameter buffer) or a WeightStore (inference: each tensor kept in the dtype it was loaded
// with). Inference sessions and evaluators borrow one ModelWeights; none of them copies the weights.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

template <typename T>
struct LayerWeightViews {
  const T* attn_norm = nullptr;  // [D]
  WeightMatrix wq;               // [H*hd, D]
  WeightMatrix wk;               // [Hkv*hd, D]
  WeightMatrix wv;               // [Hkv*hd, D]
  // [(H + 2 Hkv)*hd, D]: q, k and v as one matrix when they are contiguous rows of one dtype (one product
  // instead of three); rows == 0 otherwise.
  WeightMatrix wqkv;
  WeightMatrix wo;              // [D, H*hd]
  const T* ffn_norm = nullptr;  // [D]
  WeightMatrix w_gate;          // [F, D]
  WeightMatrix w_up;            // [F, D]
  WeightMatrix w_gate_up;       // [2F, D] gate | up as one matrix when contiguous; rows == 0 otherwise
  WeightMatrix w_down;          // [D, F]
};

template <typename T>
struct ModelWeights {
  ModelConfig config;            // resolved (layer pattern filled in)
  WeightMatrix embed;            // [V, D]
  const T* pos_embed = nullptr;  // [P, D] (pos=learned) or null
  std::vector<LayerWeightViews<T>> layers;
  const T* final_norm = nullptr;  // [D]
  WeightMatrix lm_head;           // [V, D]; the embedding when tied
};

// Dense views into a parameter buffer (q|k|v and gate|up fused, as the layout stores them).
template <typename T>
ModelWeights<T> weights_of(const ParameterSet<T>& params);

// Weights held in the dtypes they were loaded with, for inference. Each tensor is named as in
// model/params.hpp (Hugging Face names) and shaped as the layout says; norms (and learned positions) are F32.
struct StoredTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;         // row-major [rows, cols] or [n]
  AlignedBuffer<std::uint8_t> bytes;       // owned storage, or
  std::span<const std::uint8_t> borrowed;  // storage kept alive by WeightStore::keepalive (a mapped file)

  std::span<const std::uint8_t> data() const {
    return borrowed.data() != nullptr ? borrowed : std::span<const std::uint8_t>(bytes.data(), bytes.size());
  }
};

struct WeightStore {
  ModelConfig config;  // resolved
  std::vector<StoredTensor> tensors;
  std::shared_ptr<const void> keepalive;            // what borrowed tensors point into
  std::vector<AlignedBuffer<std::uint8_t>> arenas;  // owned storage shared by several tensors (prepare_for_inference)

  const StoredTensor* find(const std::string& name) const;
  StoredTensor* find(const std::string& name);
  std::size_t bytes() const;
};

// Converts dense float parameters to a store whose matrices are `matrix_dtype` (F32, BF16 or F16; norms and
// position tables stay F32). The embedding and lm head are converted too.
WeightStore store_from_params(const ParameterSet<float>& params, DType matrix_dtype);

// Readies a loaded store for the inference kernels: copies each layer's q, k, v (and gate, up) into one buffer
// of adjacent rows when they share a dtype, so that weights_of fuses them (one product: one parallel region,
// one quantization of the activations, instead of three or two); and moves every Q8_0 / Q4_0 / Q4_1 matrix into
// its repacked layout (util/dtype.hpp: the same bytes, arranged for the SIMD kernels). Costs a copy of those
// tensors at load time; the others keep borrowing the file.
void prepare_for_inference(WeightStore& store);

// Views of a store (q|k|v and gate|up fused when the store holds them as adjacent rows of one buffer, as
// prepare_for_inference leaves them).
ModelWeights<float> weights_of(const WeightStore& store);

}  // namespace zebra
