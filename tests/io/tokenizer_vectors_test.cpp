// The tokenizer vectors of ../shared/data/tokenizer-vectors (llama.cpp's, produced by an independent
// implementation): each vocabulary read from its GGUF must give exactly the expected ids for every
// input, decode them back to the input, and survive a tokenizer.json save and load unchanged.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/io_test_util.hpp"
#include "test_paths.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/data/vocab_tokenizer.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/io/gguf_model.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

struct Case {
  std::string text;
  std::vector<std::int32_t> ids;
};

// .inp: texts each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per text.
std::vector<Case> read_cases(const std::string& base) {
  const std::string inp = read_file(base + ".inp"), out = read_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (std::size_t at = 0;;) {
    const std::size_t hit = inp.find(sep, at);
    if (hit == std::string::npos) break;
    cases.push_back(Case{inp.substr(at, hit - at), {}});
    at = hit + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (Case& c : cases) {
    if (!std::getline(lines, line)) break;
    std::istringstream ids(line);
    for (std::int32_t id; ids >> id;) c.ids.push_back(id);
  }
  return cases;
}

std::string ids_text(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (std::int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Number of cases where `tok` gives the expected ids; each mismatch is reported.
std::size_t count_matches(const Tokenizer& tok, const std::vector<Case>& cases, const std::string& what) {
  std::size_t ok = 0;
  for (const Case& c : cases) {
    const std::vector<std::int32_t> got = tok.encode(c.text);
    if (got == c.ids) {
      ++ok;
    } else {
      ADD_FAILURE() << what << ": '" << c.text.substr(0, 80) << "'\n expected" << ids_text(c.ids) << "\n got     "
                    << ids_text(got);
    }
    EXPECT_EQ(tok.decode(got), c.text) << what;
  }
  return ok;
}

// Texts glued from pieces that stress pre-tokenizers and byte handling: code, digit runs, accents,
// CJK, emoji with ZWJ, runs of spaces and line breaks, special-token spellings, invalid UTF-8. Not a
// literal U+2581: SentencePiece-style vocabularies cannot tell it from a space (it decodes as one).
std::vector<std::string> random_texts(std::uint64_t seed, std::size_t count) {
  static const char* kPieces[] = {"Hello",
                                  " world",
                                  "  ",
                                  "   ",
                                  "\t",
                                  "\n",
                                  "\n\n",
                                  "\r\n",
                                  "123",
                                  "4567890",
                                  "3.14",
                                  "I'm",
                                  " they'LL",
                                  "if (x) { return y[i]; }",
                                  "caf\xC3\xA9",
                                  "\xC3\xA4pfel",
                                  "\xE4\xB8\xAD\xE6\x96\x87",
                                  "\xF0\x9F\x9A\x80",
                                  "\xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F",
                                  "<|endoftext|>",
                                  "<s>",
                                  "</s>",
                                  "\xFF",
                                  "\xC3",
                                  "\xD0\x9F\xD1\x80\xD0\xB8",
                                  "!!!",
                                  "...",
                                  "'",
                                  "\xEF\xBC\x9F"};
  Rng rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) {
    std::string t;
    const std::size_t n = rng.below(12);
    for (std::size_t k = 0; k < n; ++k) t += kPieces[rng.below(std::size(kPieces))];
    out.push_back(t);
  }
  return out;
}

class TokenizerVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerVectors, MatchExactly) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::string base = test::shared_dir() + "/data/tokenizer-vectors/ggml-vocab-" + GetParam() + ".gguf";
  const std::vector<Case> cases = read_cases(base);
  ASSERT_GE(cases.size(), 40u) << base;
  const GgufFile file = GgufFile::open(base);
  const VocabData vocab = gguf_vocab(file);
  const auto tok = make_vocab_tokenizer(vocab, base);
  const std::size_t ok = count_matches(*tok, cases, GetParam());
  std::cout << "[ vectors  ] " << GetParam() << " (" << vocab.model << ", pre " << vocab.pre << "): " << ok << "/"
            << cases.size() << " match\n";
  EXPECT_EQ(ok, cases.size());

  // Saved as tokenizer.json and read back, the tokenizer is the same (the SentencePiece-style one
  // then merges by ranks derived from the scores).
  test::TempDir dir;
  tok->save(dir.file(tok->file_name()));
  const auto back = load_tokenizer(dir.file(tok->file_name()));
  EXPECT_EQ(count_matches(*back, cases, GetParam() + " via tokenizer.json"), cases.size());
  EXPECT_EQ(back->bos_id(), tok->bos_id());
  EXPECT_EQ(back->eos_id(), tok->eos_id());
  EXPECT_EQ(back->add_bos(), tok->add_bos());
  // Any text, invalid UTF-8 included, decodes back to itself with invalid sequences as U+FFFD, and
  // the reloaded tokenizer agrees.
  for (const std::string& t : random_texts(7, 60)) {
    const std::vector<std::int32_t> ids = tok->encode(t);
    EXPECT_EQ(tok->decode(ids), sanitize_utf8(t)) << GetParam();
    EXPECT_EQ(back->encode(t), ids) << GetParam();
    EXPECT_EQ(back->encode_special(t), tok->encode_special(t)) << GetParam();
  }
  // scripts/tokenizer_interop.sh sets this to check the files with Hugging Face tokenizers.
  if (const char* out = std::getenv("ZEBRA_TOKENIZER_EXPORT_DIR")) {
    const std::string to = std::string(out) + "/" + GetParam();
    std::filesystem::create_directories(to);
    tok->save(to + "/" + tok->file_name());
    // And zebra's ids for varied texts (special tokens parsed, as HF's encode does by default).
    nlohmann::json lines = nlohmann::json::array();
    for (const std::string& t : random_texts(11, 200)) {
      lines.push_back({{"text", sanitize_utf8(t)}, {"ids", tok->encode_special(t)}});
    }
    write_file_atomic(to + "/varied.json", lines.dump());
  }
}

INSTANTIATE_TEST_SUITE_P(Gguf, TokenizerVectors,
                         ::testing::Values("llama-spm", "llama-bpe", "gpt-2", "starcoder", "qwen2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace zebra
