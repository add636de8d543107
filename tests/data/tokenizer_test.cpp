#include "zebra/data/tokenizer.hpp"

#include <gtest/gtest.h>

#include "data/temp_dir.hpp"
#include "test_paths.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;

TEST(LoadTokenizer, DispatchesByNameAndSniffsContent) {
  TempDir dir;
  std::vector<std::string> docs;
  for (int i = 0; i < 30; ++i) docs.push_back("some words to train on, line " + std::to_string(i) + "\nmore words\n");
  SentencePieceTrainOptions o;
  o.vocab_size = 320;
  train_sentencepiece(docs, o, dir / "tokenizer.model");
  auto sp = load_tokenizer(dir / "tokenizer.model");
  EXPECT_EQ(sp->file_name(), "tokenizer.model");
  EXPECT_EQ(sp->vocab_size(), 320);
  // The same bytes under a neutral name are recognised by content.
  write_bytes(dir / "tok.dat", read_file(dir / "tokenizer.model"));
  EXPECT_EQ(load_tokenizer(dir / "tok.dat")->file_name(), "tokenizer.model");
  if (test::shared_available()) {
    const std::string tok512 = test::shared_dir() + "/models/stories260K/tok512.bin";
    EXPECT_EQ(load_tokenizer(tok512)->file_name(), "tokenizer.bin");
    write_bytes(dir / "tok512.vocab", read_file(tok512));
    EXPECT_EQ(load_tokenizer(dir / "tok512.vocab")->vocab_size(), 512);
  }
  write_bytes(dir / "junk.dat", std::string("\xFF\xFF\xFF\x7F garbage"));
  try {
    load_tokenizer(dir / "junk.dat");
    ADD_FAILURE() << "junk loaded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("junk.dat"), std::string::npos) << msg;
    EXPECT_NE(msg.find("SentencePiece"), std::string::npos) << msg;
    EXPECT_NE(msg.find("llama2.c"), std::string::npos) << msg;
  }
  EXPECT_THROW(load_tokenizer(dir / "absent.model"), Error);
}

}  // namespace
}  // namespace zebra
