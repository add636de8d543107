#include "zebra/ops/embedding.hpp"

#include <cstring>

#include "zebra/util/error.hpp"

namespace zebra {

template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, std::int64_t n, std::int64_t d,
                       std::int64_t vocab_size) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::int32_t id = tokens[i];
    ZEBRA_CHECK(id >= 0 && id < vocab_size, "embedding: token id ", id, " at position ", i,
                " is outside the vocabulary [0, ", vocab_size, ")");
    std::memcpy(out + i * d, table + static_cast<std::int64_t>(id) * d, static_cast<std::size_t>(d) * sizeof(T));
  }
}

template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int32_t* tokens, std::int64_t n, std::int64_t d) {
  // Serial over tokens: two tokens may share a row.
  for (std::int64_t i = 0; i < n; ++i) {
    T* row = dtable + static_cast<std::int64_t>(tokens[i]) * d;
    const T* g = dout + i * d;
    for (std::int64_t k = 0; k < d; ++k) row[k] += g[k];
  }
}

template void embedding_forward<float>(float*, const std::int32_t*, const float*, std::int64_t, std::int64_t,
                                       std::int64_t);
template void embedding_forward<double>(double*, const std::int32_t*, const double*, std::int64_t, std::int64_t,
                                        std::int64_t);
template void embedding_backward<float>(float*, const float*, const std::int32_t*, std::int64_t, std::int64_t);
template void embedding_backward<double>(double*, const double*, const std::int32_t*, std::int64_t, std::int64_t);

}  // namespace zebra
