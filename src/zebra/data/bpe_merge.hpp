// The merge loop shared by byte-level BPE (merges by rank) and SentencePiece-style vocabularies (pairs
// by the score of their concatenation): a word starts as a sequence of symbols, and the adjacent pair
// with the lowest key is merged (ties: the leftmost pair) until no adjacent pair has a key.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace zebra {

// A symbol of a word: bytes [begin, end) of the word and its token id (-1: not a token).
struct MergeSymbol {
  std::uint32_t begin = 0, end = 0;
  std::int32_t id = -1;
};

// Whether adjacent symbols `left` and `right` (texts and ids) may merge; if so sets *key (lower merges
// first) and *merged_id (the id of the merged symbol, -1 allowed).
using MergeKeyFn = std::function<bool(std::string_view left, std::int32_t left_id, std::string_view right,
                                      std::int32_t right_id, double* key, std::int32_t* merged_id)>;

// Merges `symbols` (consecutive, covering `word`) in place. A heap of candidate pairs with lazy
// invalidation: O(n log n) key look-ups for a word of n symbols, with exactly the result of rescanning
// all pairs after every merge.
void merge_symbols(std::string_view word, std::vector<MergeSymbol>& symbols, const MergeKeyFn& key);

// The UTF-8 characters of valid UTF-8 `word` as symbols, each with the id `lookup` gives its text.
std::vector<MergeSymbol> utf8_symbols(std::string_view word,
                                      const std::function<std::int32_t(std::string_view)>& lookup);

// Merges "left right" by rank (their index), as token ids: a MergeKeyFn for merge_symbols.
class MergeTable {
 public:
  MergeTable() = default;
  // Each merge names two tokens (split at the first space after its first byte, so a left token may be
  // a space) whose concatenation is a token; errors name `name`, the merge index and its text.
  MergeTable(const std::vector<std::string>& merges, const std::function<std::int32_t(std::string_view)>& token_id,
             const std::string& name);
  bool empty() const { return table_.empty(); }
  // Rank and merged id of the pair (l, r); false when it is not a merge.
  bool find(std::int32_t l, std::int32_t r, double* rank, std::int32_t* merged) const;

 private:
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> table_;  // (l << 32 | r) -> (rank, id)
};

}  // namespace zebra
