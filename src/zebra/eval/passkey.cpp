#include "zebra/eval/passkey.hpp"

#include <cmath>

#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

std::string passkey_line(std::int64_t key) {
  const std::string k = std::to_string(key);
  return "The pass key is " + k + ". Remember it. " + k + " is the pass key.";
}

namespace {

constexpr std::int64_t kNumFiller = sizeof kFillerSentences / sizeof kFillerSentences[0];

// Filler sentences first .. last - 1 of the endless cycle, joined by spaces.
std::string filler(std::int64_t first, std::int64_t last) {
  std::string s;
  for (std::int64_t i = first; i < last; ++i) {
    if (i > first) s += ' ';
    s += kFillerSentences[i % kNumFiller];
  }
  return s;
}

std::int64_t sentences_before(double depth, std::int64_t n_filler) {
  return std::llround(depth * static_cast<double>(n_filler));
}

}  // namespace

std::string passkey_text(std::int64_t key, std::int64_t n_filler, std::int64_t n_before, std::size_t* prefix_chars) {
  ZEBRA_CHECK(n_filler >= 0 && n_before >= 0 && n_before <= n_filler, "passkey: the key must come after 0 .. ",
              n_filler, " filler sentences, got ", n_before);
  std::string text;
  if (n_before > 0) text = filler(0, n_before) + "\n";
  if (prefix_chars != nullptr) *prefix_chars = text.size();
  text += passkey_line(key) + "\n";
  if (n_before < n_filler) text += filler(n_before, n_filler) + "\n";
  return text + kPasskeyQuestion;
}

PasskeyPrompt build_passkey_prompt(const EncodeFn& encode, std::int32_t bos_id, std::int64_t length, double depth,
                                   std::int64_t key) {
  ZEBRA_CHECK(depth >= 0.0 && depth <= 1.0, "passkey: depth must lie in [0, 1], got ", depth);
  ZEBRA_CHECK(length >= 1, "passkey: length must be >= 1 token, got ", length);
  // Prompt tokens (BOS included) for N filler sentences; grows with N (each sentence adds tokens).
  auto size = [&](std::int64_t n) {
    return 1 + static_cast<std::int64_t>(encode(passkey_text(key, n, sentences_before(depth, n))).size());
  };
  const std::int64_t bare = size(0);
  ZEBRA_CHECK(bare <= length, "passkey: the key line and question alone take ", bare, " tokens, more than the length ",
              length);
  // The largest N with size(N) <= length: double until too long, then bisect (lo fits, hi does not).
  std::int64_t lo = 0, hi = 1;
  while (size(hi) <= length) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    (size(mid) <= length ? lo : hi) = mid;
  }
  PasskeyPrompt p;
  p.key = key;
  p.n_filler = lo;
  p.n_before = sentences_before(depth, lo);
  std::size_t prefix_chars = 0;
  p.text = passkey_text(key, p.n_filler, p.n_before, &prefix_chars);
  p.tokens = {bos_id};
  const std::vector<std::int32_t> ids = encode(p.text);
  p.tokens.insert(p.tokens.end(), ids.begin(), ids.end());
  p.key_position = 1 + static_cast<std::int64_t>(encode(std::string_view(p.text).substr(0, prefix_chars)).size());
  return p;
}

std::string first_integer(std::string_view text) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0;
  while (i < text.size() && !is_digit(text[i])) ++i;
  std::size_t j = i;
  while (j < text.size() && is_digit(text[j])) ++j;
  return std::string(text.substr(i, j - i));
}

bool passkey_correct(std::string_view output, std::int64_t key) { return first_integer(output) == std::to_string(key); }

std::vector<std::int64_t> passkey_keys(std::int64_t trials, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int64_t> keys;
  for (std::int64_t t = 0; t < trials; ++t) keys.push_back(10000 + static_cast<std::int64_t>(rng.below(90000)));
  return keys;
}

std::int64_t PasskeyCell::n_correct() const {
  std::int64_t n = 0;
  for (const PasskeyTrial& t : trials) n += t.correct ? 1 : 0;
  return n;
}

double PasskeyCell::accuracy() const {
  return trials.empty() ? 0.0 : static_cast<double>(n_correct()) / static_cast<double>(trials.size());
}

std::int64_t PasskeyResult::n_correct() const {
  std::int64_t n = 0;
  for (const PasskeyCell& c : cells) n += c.n_correct();
  return n;
}

std::int64_t PasskeyResult::n_trials() const {
  std::int64_t n = 0;
  for (const PasskeyCell& c : cells) n += static_cast<std::int64_t>(c.trials.size());
  return n;
}

void validate_passkey_options(const PasskeyOptions& o) {
  ZEBRA_CHECK(!o.lengths.empty(), "passkey: give at least one length");
  ZEBRA_CHECK(!o.depths.empty(), "passkey: give at least one depth");
  for (std::int64_t l : o.lengths) ZEBRA_CHECK(l >= 1, "passkey: lengths must be >= 1 token, got ", l);
  for (double d : o.depths) ZEBRA_CHECK(d >= 0.0 && d <= 1.0, "passkey: depths must lie in [0, 1], got ", d);
  ZEBRA_CHECK(o.trials >= 1, "passkey: trials must be >= 1, got ", o.trials);
}

PasskeyResult evaluate_passkey(const PasskeyOptions& options, const EncodeFn& encode, std::int32_t bos_id,
                               const std::function<std::string(const std::vector<std::int32_t>&)>& complete,
                               const std::function<void(std::int64_t, std::int64_t)>& progress) {
  validate_passkey_options(options);
  const std::vector<std::int64_t> keys = passkey_keys(options.trials, options.seed);
  const std::int64_t total = static_cast<std::int64_t>(options.depths.size() * options.lengths.size()) * options.trials;
  PasskeyResult result;
  Timer timer;
  std::int64_t done = 0;
  for (double depth : options.depths) {
    for (std::int64_t length : options.lengths) {
      PasskeyCell cell;
      cell.length = length;
      cell.depth = depth;
      for (std::int64_t key : keys) {
        const PasskeyPrompt p = build_passkey_prompt(encode, bos_id, length, depth, key);
        if (cell.trials.empty()) {
          cell.prompt_tokens = static_cast<std::int64_t>(p.tokens.size());
          cell.key_position = p.key_position;
        }
        PasskeyTrial t;
        t.key = key;
        t.output = complete(p.tokens);
        t.correct = passkey_correct(t.output, key);
        cell.trials.push_back(std::move(t));
        if (progress) progress(++done, total);
      }
      result.cells.push_back(std::move(cell));
    }
  }
  result.seconds = timer.seconds();
  return result;
}

}  // namespace zebra
