// The one sampling loop of zebra: `generate`, `chat`, training samples and passkey evaluation all decode
// through it. It knows nothing of the model: a decode step is a callable that runs one token after what is
// cached and returns the next logits, so any session (one sequence or many) can drive it.
//
// Per step: sample a token from the logits; a stop token ends the loop (not emitted as text); else the
// token's text goes through the streaming detokenizer and the stop-string filter, the newly final text to
// on_text; a completed stop string or max_new_tokens ends the loop; else step(token) gives the next logits.
// The last sampled token (a stop token, the one that completed a stop string or reached max_new_tokens) is
// never run through step(): the caller decides whether it belongs in its cache (DecodeResult::n_kept).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zebra/generate/detokenizer.hpp"
#include "zebra/generate/sampler.hpp"

namespace zebra {

// Runs `token` after the cached positions; returns its logits [V] (valid until the next call).
using DecodeStep = std::function<std::span<const float>(std::int32_t token)>;

struct DecodeOptions {
  std::int64_t max_new_tokens = 256;
  std::vector<std::int32_t> stop_tokens;  // e.g. EOS: the loop ends when one is sampled
  std::vector<std::string> stop_strings;  // the loop ends when the text contains one (cut before it)
  // Where the text goes. Without a detokenizer there is no text (and stop strings are refused).
  StreamingDetokenizer* detokenizer = nullptr;
  std::function<void(const std::string&)> on_text;  // each newly final piece of text
  std::function<void(std::int32_t)> on_token;       // each sampled token that is not a stop token
};

enum class StopReason { kStopToken, kStopString, kLength };
const char* to_string(StopReason r);  // "stop token", "stop string", "length"

struct DecodeResult {
  std::vector<std::int32_t> tokens;  // every sampled token, a final stop token included
  std::string text;                  // the emitted text (a stop string and what follows excluded)
  StopReason stop_reason = StopReason::kLength;
  // The leading tokens that make up the reply as shown: all but a final stop token, and after a stop string
  // those whose text lies wholly before the cut. kept_bytes: the bytes of `text` they account for.
  std::size_t n_kept = 0;
  std::size_t kept_bytes = 0;
  std::int64_t n_decoded = 0;   // calls of step()
  double decode_seconds = 0.0;  // time in step()
  double seconds = 0.0;         // the whole loop
};

// `logits` [V]: the logits after the prompt. `history`: the tokens before (the repetition penalty's window
// looks at history + sampled tokens).
DecodeResult decode_loop(std::span<const float> logits, Sampler& sampler, const DecodeStep& step,
                         const DecodeOptions& options, std::span<const std::int32_t> history = {});

}  // namespace zebra
