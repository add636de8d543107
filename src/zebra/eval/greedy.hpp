// Greedy continuation of a prompt with the KV-cached InferenceSession (for retrieval tests such as passkey):
// the one decode loop (generate/decode_loop.hpp) with the greedy sampler.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "zebra/model/generator.hpp"

namespace zebra {

// Resets `session`, prefills `prompt` and decodes up to max_new_tokens tokens, each the argmax of the logits
// (ties: the lowest id). Stops after a token equal to stop_token (>= 0; it is not returned). Returns the new
// tokens.
std::vector<std::int32_t> greedy_continue(InferenceSession<float>& session, std::span<const std::int32_t> prompt,
                                          std::int64_t max_new_tokens, std::int32_t stop_token = -1);
// As above, stopping after any of `stop_tokens` (a chat template's end-of-turn marker and EOS).
std::vector<std::int32_t> greedy_continue(InferenceSession<float>& session, std::span<const std::int32_t> prompt,
                                          std::int64_t max_new_tokens, std::span<const std::int32_t> stop_tokens);

}  // namespace zebra
