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
  // A slice of longer sequences (context parallelism, model/sharded_attention.hpp): column 0 is position
  // position_offset of sequences of full_len tokens (0: seq_len). doc_start then holds absolute positions.
  std::int64_t position_offset = 0;
  std::int64_t full_len = 0;
  std::int64_t sequence_length() const { return full_len > 0 ? full_len : seq_len; }
};

}  // namespace zebra
