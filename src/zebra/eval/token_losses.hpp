// Per-token losses for comparisons with other implementations (`zebra eval tokens`, tests/interop).
//
// Input file (JSON): one sequence of token ids `[1, 5, 9]`, several `[[1, 5], [1, 7, 3]]`, or either under
// {"tokens": ...}. Output (JSON): {"losses": [[...], ...], "mean_loss": [...]} with losses[s][j] =
// -ln p(seq[j + 1] | seq[0 .. j]) in nats, one list per sequence (eval/perplexity.hpp: evaluate_token_losses).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "zebra/model/transformer.hpp"

namespace zebra {

// Reads and checks a token file: every id in [0, vocab_size), every sequence 2 .. max_len tokens, at most
// kMaxTokenSequences sequences. Errors name the file, the sequence and index, the value and what was expected.
inline constexpr std::size_t kMaxTokenSequences = 1 << 16;
std::vector<std::vector<std::int32_t>> read_token_sequences(const std::string& path, std::int64_t vocab_size,
                                                            std::int64_t max_len);

// Losses of every sequence, as the output JSON above.
nlohmann::json token_losses_json(Transformer<float>& model, const std::vector<std::vector<std::int32_t>>& sequences);

}  // namespace zebra
