// A model as a GGUF file of architecture "zebra" (zebra quantize): the llama tensor names and metadata keys
// under the prefix "zebra." plus the layer pattern, so that zebra reads it back as the same model while a
// reader that does not know Zebra (llama.cpp) refuses the unknown architecture instead of running a Zebra
// layout as full attention.
//
// Metadata: general.architecture = "zebra", general.name, general.file_type; zebra.context_length,
// embedding_length, block_count, feed_forward_length, attention.head_count, head_count_kv, key_length,
// value_length, layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, vocab_size; the RoPE scaling
// (rope.scaling.type: none, linear, ntk, dynamic, yarn; rope.scaling.factor;
// rope.scaling.original_context_length) and, when any layer is local, attention.sliding_window (zebra's
// window: the query's own key included, as llama.cpp's n_swa) with attention.sliding_window_pattern as
// array[bool], true for a local layer. Tokenizer keys (tokenizer.*) are copied from `tokenizer_metadata`.
//
// Tensors: every matrix in `matrix_dtype` (Q8_0, Q4_0, Q4_1, F16, BF16 or F32; its columns must fit the
// blocks), the token embedding and an untied head in `embed_dtype`, norms F32; Q and K rows permuted to
// GGUF's interleaved RoPE layout, as llama.cpp's converter writes them (io/rope_layout.hpp). Written
// atomically.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "zebra/io/gguf.hpp"
#include "zebra/model/params.hpp"

namespace zebra {

struct GgufExportOptions {
  DType matrix_dtype = DType::kQ8_0;
  DType embed_dtype = DType::kQ8_0;
  std::string name;  // general.name
};

struct GgufExportSummary {
  std::size_t tensor_bytes = 0;  // bytes of tensor data written
  std::size_t tensors = 0;
};

// Throws before writing anything for a model GGUF cannot describe (positions other than RoPE) or a matrix
// whose columns do not fit the dtype's blocks.
GgufExportSummary write_model_gguf(const std::string& path, const ParameterSet<float>& params,
                                   const std::vector<std::pair<std::string, GgufValue>>& tokenizer_metadata,
                                   const GgufExportOptions& options);

}  // namespace zebra
