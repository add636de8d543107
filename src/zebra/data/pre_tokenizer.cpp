#include "zebra/data/pre_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// GPT-2's pattern: contractions, letters and numbers with an optional leading space, other symbols
// likewise, and whitespace that leaves the last space of a run to the following word.
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (cl100k): case-insensitive contractions, a letter run may take one leading non-letter,
// numbers in groups of up to three digits, line breaks kept with the symbols before them.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: Llama 3's with single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// StarCoder / SmolLM: every digit its own piece (HF Digits(individual_digits)), then GPT-2's.
constexpr const char* kDigit = R"(\p{N})";

std::size_t utf8_char_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

}  // namespace

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
  for (const std::string& p : patterns_) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto c = std::make_unique<Compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &error, &offset,
                            nullptr);
    if (c->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      fail("pre-tokenizer regex '", bounded(p), "' does not compile at offset ", offset, ": ",
           reinterpret_cast<const char*>(message));
    }
    // JIT is an optimisation only: without it (unsupported platform) the interpreter runs.
    pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);
    compiled_.push_back(std::move(c));
  }
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;

std::vector<std::string_view> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  std::vector<std::string_view> next;
  for (std::size_t r = 0; r < compiled_.size(); ++r) {
    pcre2_code* code = compiled_[r]->code;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
    ZEBRA_CHECK(md != nullptr, "pre-tokenizer: out of memory for PCRE2 match data");
    next.clear();
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      std::size_t last = 0, at = 0;
      while (at < piece.size()) {
        // The text was validated as UTF-8 once, and pieces start and end on character boundaries.
        int rc = pcre2_match(code, subject, piece.size(), at, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
          rc = pcre2_match(code, subject, piece.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(), nullptr);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, sizeof(message));
          fail("pre-tokenizer regex '", bounded(patterns_[r]), "' failed on a piece of ", piece.size(),
               " bytes: ", reinterpret_cast<const char*>(message));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const std::size_t begin = ov[0], end = ov[1];
        if (end == begin) {  // empty match: try again one character on
          at = begin + utf8_char_length(static_cast<unsigned char>(piece[begin < piece.size() ? begin : 0]));
          continue;
        }
        if (begin > last) next.push_back(piece.substr(last, begin - last));
        next.push_back(piece.substr(begin, end - begin));
        last = at = end;
      }
      if (last < piece.size()) next.push_back(piece.substr(last));
    }
    pieces.swap(next);
  }
  return pieces;
}

bool pre_tokenizer_ignores_merges(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3";
}

std::vector<std::string> pre_tokenizer_regexes(std::string_view pre) {
  if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2") return {kGpt2};
  if (pre_tokenizer_ignores_merges(pre)) return {kLlama3};
  if (pre == "qwen2" || pre == "stablelm2") return {kQwen2};
  if (pre == "starcoder" || pre == "smollm") return {kDigit, kGpt2};
  fail("pre-tokenizer '", bounded(pre),
       "' is not known (expected one of gpt-2, default, llama-bpe, llama3, qwen2, stablelm2, starcoder, smollm)");
}

}  // namespace zebra
