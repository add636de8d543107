// Synthetic passkey retrieval (Mohtashami & Jaggi 2023, "Landmark Attention"; used by the Zebra paper): a
// 5-digit key hidden at a chosen depth of repetitive filler text, asked for at the end.
//
// Prompt (parts joined by "\n", filler sentences by " "):
//   [BOS] <f_1 ... f_k> \n The pass key is NNNNN. Remember it. NNNNN is the pass key. \n <f_{k+1} ... f_N> \n
//   What is the pass key? The pass key is
// The filler cycles through the five sentences of kFillerSentences. N is the largest count whose prompt,
// tokenized with BOS in front, is at most `length` tokens; k = round(depth * N) sentences come before the key,
// so depth 0 puts the key first and depth 1 right before the question, and the key line starts at about
// depth * (filler tokens) tokens after BOS (within one filler sentence).
// Scoring: the first run of ASCII digits in the model's continuation must equal the key exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

inline constexpr const char* kFillerSentences[] = {"The grass is green.", "The sky is blue.", "The sun is yellow.",
                                                   "Here we go.", "There and back again."};
inline constexpr const char* kPasskeyQuestion = "What is the pass key? The pass key is";

// Text to token ids without BOS (Tokenizer::encode).
using EncodeFn = std::function<std::vector<std::int32_t>(std::string_view)>;

struct PasskeyPrompt {
  std::string text;                  // without BOS
  std::vector<std::int32_t> tokens;  // BOS + encode(text)
  std::int64_t key = 0;
  std::int64_t n_filler = 0;      // N: filler sentences in the prompt
  std::int64_t n_before = 0;      // k: filler sentences before the key line
  std::int64_t key_position = 0;  // tokens before the key line (BOS included): size of BOS + encode(prefix)
};

// "The pass key is NNNNN. Remember it. NNNNN is the pass key."
std::string passkey_line(std::int64_t key);
// The prompt text for N filler sentences, k of them before the key line. *prefix_chars (optional) receives
// the number of characters before the key line.
std::string passkey_text(std::int64_t key, std::int64_t n_filler, std::int64_t n_before,
                         std::size_t* prefix_chars = nullptr);
// The longest prompt of at most `length` tokens (BOS included) with the key at relative depth `depth` in
// [0, 1]. Throws when even a prompt without filler is longer than `length`.
PasskeyPrompt build_passkey_prompt(const EncodeFn& encode, std::int32_t bos_id, std::int64_t length, double depth,
                                   std::int64_t key);

// The first run of ASCII digits in `text` ("" when there is none).
std::string first_integer(std::string_view text);
// Exact match of the first integer in the model's continuation with the key.
bool passkey_correct(std::string_view output, std::int64_t key);

// `trials` random 5-digit keys (10000 .. 99999) from `seed`; trial t uses key t in every cell of the grid.
std::vector<std::int64_t> passkey_keys(std::int64_t trials, std::uint64_t seed);

struct PasskeyOptions {
  std::vector<std::int64_t> lengths = {256, 512, 1024, 2048};  // prompt lengths in tokens (BOS included)
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  std::int64_t trials = 5;
  std::uint64_t seed = 1;
};

struct PasskeyTrial {
  std::int64_t key = 0;
  std::string output;  // the decoded continuation
  bool correct = false;
};

struct PasskeyCell {
  std::int64_t length = 0;  // requested prompt length
  double depth = 0.0;
  std::int64_t prompt_tokens = 0;  // actual prompt length (of the first trial; keys all have 5 digits)
  std::int64_t key_position = 0;   // tokens before the key line (first trial)
  std::vector<PasskeyTrial> trials;
  std::int64_t n_correct() const;
  double accuracy() const;
};

struct PasskeyResult {
  std::vector<PasskeyCell> cells;  // depth-major: cells[d * lengths + l]
  double seconds = 0.0;
  std::int64_t n_correct() const;
  std::int64_t n_trials() const;
};

// Checks lengths (>= 1), depths (in [0, 1]) and trials (>= 1); throws naming the bad value.
void validate_passkey_options(const PasskeyOptions& options);

// Runs the grid: for each depth, length and trial builds the prompt and asks complete(prompt tokens) for the
// continuation's text. progress(done, total) after each trial when given.
PasskeyResult evaluate_passkey(const PasskeyOptions& options, const EncodeFn& encode, std::int32_t bos_id,
                               const std::function<std::string(const std::vector<std::int32_t>&)>& complete,
                               const std::function<void(std::int64_t, std::int64_t)>& progress = {});

}  // namespace zebra
