#include "zebra/data/tokenizer.hpp"

#include <filesystem>

#include "zebra/data/llama2c_tokenizer.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  ZEBRA_CHECK(std::filesystem::is_regular_file(path, ec), "tokenizer '", path, "' does not exist or is not a file");
  if (ends_with(path, ".model")) return SentencePieceTokenizer::load(path);
  if (ends_with(path, ".bin")) return Llama2cTokenizer::load(path);
  if (ends_with(path, ".json")) return load_tokenizer_json(path);
  // Unknown name: a tokenizer.json by its content, else try both binary formats and report both failures.
  std::string bytes = read_file(path);
  if (looks_like_tokenizer_json(bytes)) return load_tokenizer_json(path);
  std::string sp_error, l2c_error;
  try {
    return SentencePieceTokenizer::from_serialized(bytes, path);
  } catch (const Error& e) {
    sp_error = e.what();
  }
  try {
    return Llama2cTokenizer::from_bytes(bytes, path);
  } catch (const Error& e) {
    l2c_error = e.what();
  }
  fail("tokenizer '", path, "' is neither a SentencePiece model (", sp_error, ") nor a llama2.c tokenizer.bin (",
       l2c_error, ")");
}

}  // namespace zebra
