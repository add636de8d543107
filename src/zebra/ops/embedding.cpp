#include "zebra/ops/embedding.hpp"

#include <cstring>
#include <type_traits>

#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const WeightMatrix& table, std::int64_t n) {
  const std::int64_t d = table.cols;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = tokens[i];
    ZEBRA_CHECK(t >= 0 && t < table.rows, "token id ", t, " at index ", i, " is outside the vocabulary [0, ",
                table.rows, ")");
    if constexpr (std::is_same_v<T, float>) {
      quant::dequantize_row(table.dtype, table.row(t), out + i * d, d);
    } else {
      ZEBRA_CHECK(table.dtype == DType::kF64, "embedding: double lookups need an F64 table, got ",
                  to_string(table.dtype));
      std::memcpy(out + i * d, table.row(t), static_cast<std::size_t>(d) * sizeof(double));
    }
  }
}

template <typename T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* table, std::int64_t n, std::int64_t d,
                       std::int64_t vocab_size) {
  embedding_forward(out, tokens, WeightMatrix::dense<T>(table, vocab_size, d), n);
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

template void embedding_forward<float>(float*, const std::int32_t*, const WeightMatrix&, std::int64_t);
template void embedding_forward<double>(double*, const std::int32_t*, const WeightMatrix&, std::int64_t);

}  // namespace zebra
