// Text samples from a model during or after training (what a small model learned), decoded with the KV
// cache through the one decode loop (generate/decode_loop.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/sampler.hpp"
#include "zebra/model/params.hpp"

namespace zebra {

// Continues `prompt` (BOS is prepended) by up to `max_new_tokens` tokens, within `max_context` positions
// (prompt included; 0 = no limit); stops at EOS, and at a newline when `stop_at_newline`. Returns the
// generated text only, spaced as it continues the prompt.
std::string sample_text(const ParameterSet<float>& params, const Tokenizer& tokenizer, const std::string& prompt,
                        std::int64_t max_new_tokens, std::int64_t max_context, Sampler& sampler,
                        bool stop_at_newline = false);

}  // namespace zebra
