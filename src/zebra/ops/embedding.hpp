// Token and learned absolute position embeddings.
#pragma once

#include <cstdint>

#include "zebra/ops/weight.hpp"

namespace zebra {

// out[N, D] = table[tokens[n]]  (overwrites). Token ids are checked against vocab_size.
template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, std::int64_t n, std::int64_t d,
                       std::int64_t vocab_size);
// out[N, table.cols] = rows tokens[n] of a typed table, converted to T (float: any dtype ops/quant/ reads;
// double: F64 only). Ids are checked against table.rows.
template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const WeightMatrix& table, std::int64_t n);
// dtable[V, D] += scatter of dout[N, D] by token id (parameter gradient: accumulates).
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int32_t* tokens, std::int64_t n, std::int64_t d);

}  // namespace zebra
