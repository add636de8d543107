// Softmax cross-entropy over a chunk of rows. The model calls it on chunks of tokens so that the
// full [T, vocab] logits never exist (DESIGN.md §5). Targets < 0 are ignored.
#pragma once

#include <cstdint>

#include "zebra/ops/compute.hpp"

namespace zebra {

// logits[C, V] are overwritten with softmax probabilities. Returns the sum over valid rows of
// -log p[target] (in double) and adds the number of valid rows to *n_valid. options: threads, SIMD path.
template <typename T>
double cross_entropy_forward(T* logits, const std::int32_t* targets, std::int64_t rows, std::int64_t vocab,
                             std::int64_t* n_valid, const ComputeOptions& options = {});

// dlogits[C, V] overwritten with scale * (probs - onehot(target)) on valid rows, 0 on ignored rows.
// dlogits may alias probs.
template <typename T>
void cross_entropy_backward(T* dlogits, const T* probs, const std::int32_t* targets, std::int64_t rows,
                            std::int64_t vocab, T scale, const ComputeOptions& options = {});

}  // namespace zebra
