// Text samples from a model without a KV cache: each new token re-runs the whole context (at most
// the model's training length). Cheap enough for showing what a small model learned; generation
// with a cache lives in model/generator.hpp.
#pragma once

#include <cstdint>
#include <string>

#include "zebra/data/tokenizer.hpp"
#include "zebra/model/sampler.hpp"
#include "zebra/model/transformer.hpp"

namespace zebra {

// Continues `prompt` (BOS is prepended) by up to `max_new_tokens` tokens; stops at EOS or a newline
// when `stop_at_newline`. Returns the generated text only.
std::string sample_text_uncached(Transformer<float>& model, const Tokenizer& tokenizer, const std::string& prompt,
                                 std::int64_t max_new_tokens, std::int64_t max_context, Sampler& sampler,
                                 bool stop_at_newline = false);

}  // namespace zebra
