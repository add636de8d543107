// The one masking predicate (DESIGN.md §1). Every attention kernel and every KV cache calls it.
//
// A query at position i sees key position j when
//     max(i - window + 1, doc_start(i)) <= j <= i
// `window` counts the query's own position (Hugging Face `sliding_window`, llama.cpp `n_swa`);
// a global layer passes kGlobalWindow. `doc_start` is the first position of the query's document
// inside a packed sequence (0 when document masking is off).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace zebra {

inline constexpr std::int64_t kGlobalWindow = std::numeric_limits<std::int64_t>::max();

// Smallest key position that query position `i` may see.
inline std::int64_t first_visible_key(std::int64_t i, std::int64_t window, std::int64_t doc_start = 0) {
  std::int64_t window_start = window > i ? 0 : i - window + 1;
  return std::max(window_start, doc_start);
}

inline bool key_visible(std::int64_t i, std::int64_t j, std::int64_t window, std::int64_t doc_start = 0) {
  return j <= i && j >= first_visible_key(i, window, doc_start);
}

}  // namespace zebra
