// The two layouts of RoPE pairs in Q/K projection rows. Hugging Face (and zebra) rotate element k of a
// head with element k + hd/2 ("rotate half"); llama2.c and GGUF files store each head's rows interleaved,
// pairs (2k, 2k + 1) (llama.cpp's converter permutes them so). Importers and exporters of those formats
// reorder whole rows, so the same code serves float rows and rows of quantized blocks (each row of a
// block-quantized matrix is an independent run of blocks).
#pragma once

#include <cstddef>
#include <cstdint>

namespace zebra {

// rows: [n_heads * head_dim] rows of row_bytes bytes each, permuted in place (head_dim even).
// interleaved -> rotate-half: new[h*hd + k] = old[h*hd + 2k], new[h*hd + hd/2 + k] = old[h*hd + 2k + 1].
void permute_rows_interleaved_to_half(void* rows, std::int64_t n_heads, std::int64_t head_dim, std::size_t row_bytes);
// The inverse.
void permute_rows_half_to_interleaved(void* rows, std::int64_t n_heads, std::int64_t head_dim, std::size_t row_bytes);

}  // namespace zebra
