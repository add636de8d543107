#include "zebra/data/prepare.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "data/llama2c_vocab.hpp"
#include "data/temp_dir.hpp"
#include "zebra/data/llama2c_tokenizer.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;

std::string lorem(Rng& rng, int words) {
  static const char* w[] = {"in",    "the",    "beginning", "was", "word",  "and", "light", "upon",  "waters", "of",
                            "earth", "heaven", "said",      "let", "there", "be",  "day",   "night", "first",  "2024"};
  std::string s;
  for (int i = 0; i < words; ++i) {
    s += w[rng.below(20)];
    s += i % 11 == 10 ? "\n" : " ";
  }
  return s;
}

// Writes a corpus folder: a JSONL (with an empty document, a blank line and invalid UTF-8) and two
// text files. Returns the documents in reading order, as valid UTF-8.
std::vector<std::string> write_corpus(const std::string& dir) {
  Rng rng(11);
  std::vector<std::string> docs;
  std::string jsonl;
  for (int i = 0; i < 12; ++i) {
    docs.push_back(lorem(rng, 80 + i * 5));
    std::string escaped;
    for (char c : docs.back()) escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
    jsonl += "{\"text\": \"" + escaped + "\", \"id\": " + std::to_string(i) + "}\n";
    if (i == 3) jsonl += "{\"text\": \"\"}\n\n";
  }
  jsonl += "{\"text\": \"bad \xFF byte\"}\n";
  docs.push_back("bad \xEF\xBF\xBD byte");
  write_bytes(dir + "/a.jsonl", jsonl);
  docs.push_back(lorem(rng, 300));
  write_bytes(dir + "/b.txt", docs.back());
  docs.push_back("\xE2\x98\x83 snowman and caf\xC3\xA9\n");
  write_bytes(dir + "/c/d.md", docs.back());
  return docs;
}

std::vector<std::string> decode_all(const std::string& path, const Tokenizer& tok) {
  auto ds = TokenDataset::open(path);
  EXPECT_EQ(ds.vocab_size(), tok.vocab_size());
  std::vector<std::string> out;
  for (std::int64_t d = 0; d < ds.n_docs(); ++d) {
    auto [b, e] = ds.doc_range(d);
    EXPECT_EQ(ds.token(b), tok.bos_id());
    EXPECT_EQ(ds.token(e - 1), tok.eos_id());
    std::vector<std::int32_t> ids(static_cast<std::size_t>(e - b - 2));
    ds.read(b + 1, e - b - 2, ids.data());
    out.push_back(tok.decode(ids));
  }
  return out;
}

PrepareOptions base_options(const TempDir& dir, const std::string& out) {
  PrepareOptions o;
  o.inputs = {dir / "corpus"};
  o.out_dir = dir / out;
  o.train.vocab_size = 300;
  o.train.character_coverage = 1.0;
  o.progress = false;
  return o;
}

TEST(Prepare, TrainsTokenizerWritesDatasetsAndIsDeterministic) {
  TempDir dir;
  auto docs = write_corpus(dir / "corpus");
  PrepareOptions o = base_options(dir, "out1");
  o.valid_docs = 2;
  o.chunk_bytes = 500;  // many parallel chunks
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.corpus.files, 3);
  EXPECT_EQ(r.corpus.documents, 15);
  EXPECT_EQ(r.corpus.empty_documents, 1);
  EXPECT_EQ(r.corpus.replaced_utf8, 1);
  EXPECT_EQ(r.train.documents, 13);
  EXPECT_EQ(r.valid.documents, 2);
  EXPECT_TRUE(r.tokenizer_trained);
  EXPECT_EQ(r.vocab_size, 300);

  auto tok = load_tokenizer(dir / "out1/tokenizer.model");
  auto train = decode_all(dir / "out1/train.bin", *tok);
  auto valid = decode_all(dir / "out1/valid.bin", *tok);
  EXPECT_EQ(train, std::vector<std::string>(docs.begin(), docs.end() - 2));
  EXPECT_EQ(valid, std::vector<std::string>(docs.end() - 2, docs.end()));
  EXPECT_EQ(TokenDataset::open(dir / "out1/train.bin").n_tokens(), r.train.tokens);

  auto j = nlohmann::json::parse(read_file(dir / "out1/prepare.json"));
  EXPECT_EQ(j["train"]["documents"], 13);
  EXPECT_EQ(j["valid"]["tokens"], r.valid.tokens);
  EXPECT_EQ(j["corpus"]["replaced_invalid_utf8"], 1);
  EXPECT_EQ(j["corpus"]["empty_documents"], 1);
  EXPECT_GT(j["train"]["chars_per_token"].get<double>(), 1.0);

  // A second run, with different chunking, gives byte-identical data files.
  o.out_dir = dir / "out2";
  o.chunk_bytes = 1 << 20;
  prepare_dataset(o);
  for (const char* f : {"train.bin", "valid.bin", "tokenizer.model"}) {
    EXPECT_EQ(read_file(dir / (std::string("out1/") + f)), read_file(dir / (std::string("out2/") + f))) << f;
  }
}

TEST(Prepare, ValidationSources) {
  TempDir dir;
  auto docs = write_corpus(dir / "corpus");
  // Fraction of documents: round(0.2 * 15) = 3 held out.
  PrepareOptions o = base_options(dir, "frac");
  o.valid_fraction = 0.2;
  auto r = prepare_dataset(o);
  EXPECT_EQ(r.valid.documents, 3);
  EXPECT_EQ(r.train.documents, 12);
  // Separate validation inputs; max_docs limits the training inputs only.
  o = base_options(dir, "sep");
  write_bytes(dir / "v.txt", "held out text\nsecond line\n");
  o.valid_inputs = {dir / "v.txt"};
  o.max_docs = 5;
  r = prepare_dataset(o);
  EXPECT_EQ(r.train.documents, 5);
  EXPECT_EQ(r.valid.documents, 1);
  auto tok = load_tokenizer(dir / "sep/tokenizer.model");
  EXPECT_EQ(decode_all(dir / "sep/valid.bin", *tok), std::vector<std::string>{"held out text\nsecond line\n"});
  // No validation source: no valid.bin, and a stale one is removed.
  write_bytes(dir / "sep/valid.bin", "stale");
  o.valid_inputs.clear();
  r = prepare_dataset(o);
  EXPECT_FALSE(r.has_valid);
  EXPECT_FALSE(std::filesystem::exists(dir / "sep/valid.bin"));
}

TEST(Prepare, SingleDocumentFractionSplitsAtALineBreak) {
  TempDir dir;
  Rng rng(5);
  std::string text = lorem(rng, 2000);
  write_bytes(dir / "one/book.txt", text);
  PrepareOptions o = base_options(dir, "out");
  o.inputs = {dir / "one/book.txt"};
  o.valid_fraction = 0.1;
  auto r = prepare_dataset(o);
  EXPECT_EQ(r.train.documents, 1);
  EXPECT_EQ(r.valid.documents, 1);
  auto tok = load_tokenizer(dir / "out/tokenizer.model");
  auto train = decode_all(dir / "out/train.bin", *tok);
  auto valid = decode_all(dir / "out/valid.bin", *tok);
  EXPECT_EQ(train[0] + valid[0], text);
  EXPECT_EQ(train[0].back(), '\n');
  EXPECT_NEAR(static_cast<double>(valid[0].size()) / static_cast<double>(text.size()), 0.1, 0.02);
}

TEST(Prepare, ExistingTokenizerIsCopied) {
  TempDir dir;
  auto docs = write_corpus(dir / "corpus");
  // A byte-level llama2.c vocabulary (every text encodes through byte fallback plus a few merges).
  const test::Llama2cVocab v =
      test::llama2c_vocab({" ", "e", "t", "h", "th", "the", " the", "a", "n", "d", "an", "and", " and"});
  Llama2cTokenizer l2c(v.pieces, v.scores, 8);
  l2c.save(dir / "my_tokenizer.bin");
  write_bytes(dir / "out/tokenizer.model", "stale tokenizer of the other kind");
  PrepareOptions o = base_options(dir, "out");
  o.tokenizer_path = dir / "my_tokenizer.bin";
  auto r = prepare_dataset(o);
  EXPECT_FALSE(r.tokenizer_trained);
  EXPECT_EQ(read_file(dir / "out/tokenizer.bin"), read_file(dir / "my_tokenizer.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/tokenizer.model"));
  auto tok = load_tokenizer(dir / "out/tokenizer.bin");
  EXPECT_EQ(decode_all(dir / "out/train.bin", *tok), docs);
}

TEST(Prepare, OptionErrors) {
  TempDir dir;
  write_corpus(dir / "corpus");
  PrepareOptions o = base_options(dir, "out");
  o.valid_docs = 1;
  o.valid_fraction = 0.1;
  EXPECT_THROW(prepare_dataset(o), Error);
  o = base_options(dir, "out");
  o.valid_docs = 15;  // all documents
  EXPECT_THROW(prepare_dataset(o), Error);
  o = base_options(dir, "out");
  o.inputs = {dir / "missing"};
  EXPECT_THROW(prepare_dataset(o), Error);
  o = base_options(dir, "out");
  o.strict_utf8 = true;  // a.jsonl has an invalid byte
  EXPECT_THROW(prepare_dataset(o), Error);
  write_bytes(dir / "empty/e.txt", "");
  o = base_options(dir, "out");
  o.inputs = {dir / "empty"};
  EXPECT_THROW(prepare_dataset(o), Error);
}

}  // namespace
}  // namespace zebra
