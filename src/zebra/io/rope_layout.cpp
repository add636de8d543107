#include "zebra/io/rope_layout.hpp"

#include <cstring>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// to_half: row 2k -> k, 2k+1 -> hd/2 + k; otherwise the inverse.
void permute(void* rows, std::int64_t n_heads, std::int64_t head_dim, std::size_t row_bytes, bool to_half) {
  ZEBRA_CHECK(head_dim > 0 && head_dim % 2 == 0 && n_heads >= 0, "RoPE row permutation: head_dim ", head_dim,
              " must be even and positive, n_heads ", n_heads, " non-negative");
  const std::int64_t half = head_dim / 2;
  const std::size_t head_bytes = static_cast<std::size_t>(head_dim) * row_bytes;
  std::vector<unsigned char> tmp(head_bytes);
  auto* base = static_cast<unsigned char*>(rows);
  for (std::int64_t h = 0; h < n_heads; ++h) {
    unsigned char* head = base + static_cast<std::size_t>(h) * head_bytes;
    std::memcpy(tmp.data(), head, head_bytes);
    for (std::int64_t k = 0; k < half; ++k) {
      for (std::int64_t s = 0; s < 2; ++s) {
        const auto interleaved = static_cast<std::size_t>(2 * k + s);
        const auto halved = static_cast<std::size_t>(s * half + k);
        const std::size_t dst = to_half ? halved : interleaved, src = to_half ? interleaved : halved;
        std::memcpy(head + dst * row_bytes, tmp.data() + src * row_bytes, row_bytes);
      }
    }
  }
}

}  // namespace

void permute_rows_interleaved_to_half(void* rows, std::int64_t n_heads, std::int64_t head_dim, std::size_t row_bytes) {
  permute(rows, n_heads, head_dim, row_bytes, true);
}

void permute_rows_half_to_interleaved(void* rows, std::int64_t n_heads, std::int64_t head_dim, std::size_t row_bytes) {
  permute(rows, n_heads, head_dim, row_bytes, false);
}

}  // namespace zebra
