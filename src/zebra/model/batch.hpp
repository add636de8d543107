// A batch of token sequences as the model sees it.
#pragma once

#include <cstdint>

namespace zebra {

struct BatchView {
  std::int64_t batch = 1;
  std::int64_t seq_len = 0;
  const std::int32_t* tokens = nullptr;     // [B, T]
  const std::int32_t* targets = nullptr;    // [B, T] next tokens, < 0 = ignored; null for no loss
  const std::int32_t* doc_start = nullptr;  // [B, T] document start per token (document mask), or null
};

}  // namespace zebra
