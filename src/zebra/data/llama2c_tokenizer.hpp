// The llama2.c tokenizer ("tokenizer.bin"): a SentencePiece-derived vocabulary with merge scores,
// encoded by llama2.c's greedy highest-score-pair merging.
//
// File format (little-endian): int32 max_token_length, then for each token: float32 score,
// int32 byte length, the bytes. The vocabulary size is not stored: records run to the end of the
// file. Pieces carry a plain ' ' where SentencePiece has "▁"; ids 3..258 are the byte pieces
// "<0x00>".."<0xFF>"; BOS = 1, EOS = 2.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "zebra/data/tokenizer.hpp"

namespace zebra {

class Llama2cTokenizer : public Tokenizer {
 public:
  // Reads and validates a tokenizer.bin; errors name the file, the token index and what was
  // expected (truncated records, negative or over-long lengths, non-finite scores, no tokens).
  static std::unique_ptr<Llama2cTokenizer> load(const std::string& path);
  // Parses the bytes of a tokenizer.bin; `name` is used in error messages.
  static std::unique_ptr<Llama2cTokenizer> from_bytes(std::string_view bytes, const std::string& name);
  // Builds one from pieces and scores (same validation as load).
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::int32_t max_token_length);
  // The piece index holds views into the pieces, so instances are neither copied nor moved.
  Llama2cTokenizer(const Llama2cTokenizer&) = delete;
  Llama2cTokenizer& operator=(const Llama2cTokenizer&) = delete;

  // As llama2.c's encode() with bos = eos = 0: a " " token is prepended when the text is non-empty,
  // each UTF-8 character (a lead byte plus up to 3 continuation bytes) is looked up whole, characters
  // not in the vocabulary become byte tokens (byte + 3), then the adjacent pair whose concatenation
  // is the vocabulary piece with the highest score (> -1e10; ties: leftmost pair) is merged until no
  // pair is in the vocabulary. Implemented with a heap over pairs and lazy invalidation, O(n log n),
  // with exactly the result of llama2.c's O(n^2) loop. Where two tokens share a piece string the
  // lowest id is used (llama2.c's bsearch picks an unspecified one). Unlike llama2.c, text is not cut
  // at a NUL byte.
  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Concatenation of piece(id) where a piece that follows BOS, or comes first, loses one leading
  // space (llama2.c's decode() with a BOS before the sequence), and BOS/EOS decode to nothing.
  // decode(encode(s)) == s.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  // The raw piece, with "<0xNN>" turned into the byte NN and BOS/EOS as "". For streaming output,
  // drop the leading ' ' of the first piece after BOS (or at the start), as decode() does.
  std::string piece(std::int32_t id) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  std::int32_t bos_id() const override { return 1; }
  std::int32_t eos_id() const override { return 2; }
  std::string file_name() const override { return "tokenizer.bin"; }
  // Writes the same format back (byte-identical to the file it was loaded from).
  void save(const std::string& path) const override;

  const std::string& raw_piece(std::int32_t id) const;
  float score(std::int32_t id) const;
  std::int32_t max_token_length() const { return max_token_length_; }
  // Id of an exact piece string, or -1.
  std::int32_t lookup(std::string_view piece) const;

 private:
  void build_index();

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::int32_t max_token_length_;
  std::unordered_map<std::string_view, std::int32_t> index_;  // views into pieces_
  std::vector<std::int16_t> byte_value_;                      // id -> byte for "<0xNN>" pieces, else -1
};

}  // namespace zebra
