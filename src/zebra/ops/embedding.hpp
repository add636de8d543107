// Token and learned absolute position embeddings.
#pragma once

#include <cstdint>

namespace zebra {

// out[N, D] = table[tokens[n]]  (overwrites). Token ids are checked against vocab_size.
template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, std::int64_t n, std::int64_t d,
                       std::int64_t vocab_size);
// dtable[V, D] += scatter of dout[N, D] by token id (parameter gradient: accumulates).
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int32_t* tokens, std::int64_t n, std::int64_t d);

}  // namespace zebra
