// SentencePiece tokenizers (tokenizer.model): loading, encoding and decoding through
// libsentencepiece, and deterministic training of new models.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace zebra {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Loads a serialized ModelProto; throws naming the file when it is not a valid model.
  static std::unique_ptr<SentencePieceTokenizer> load(const std::string& path);
  static std::unique_ptr<SentencePieceTokenizer> from_serialized(std::string serialized, const std::string& name);
  ~SentencePieceTokenizer() override;

  // Invalid UTF-8 in `text` is first replaced by U+FFFD (sanitize_utf8) so that behaviour is defined.
  // Long texts are encoded in segments (see segment()), with the same result as one call to
  // SentencePiece on the whole text, but several times faster.
  std::vector<std::int32_t> encode(std::string_view text) const override;

  // SentencePiece's encoder slows down on long inputs (about 0.3 MB/s on a 4 MB text against
  // 1.5 MB/s line by line). When '\n' is a forced token boundary -- it is never part of a piece and
  // encodes as the byte piece <0x0A> (byte fallback, identity-like normalisation keeping
  // whitespace), checked at load with probes -- a text can be cut before any '\n' and the pieces
  // encoded separately: no piece spans the cut, so BPE merges and unigram Viterbi paths decompose.
  // True when that holds for this model.
  bool newline_is_boundary() const { return newline_is_boundary_; }
  // A single line can be as long as the whole text (16 MiB in one line took 26 s and 1.5 GB in one call).
  // With whitespace split into words (SentencePiece's default), a lone ' ' between two printable ASCII
  // characters starts a new piece: the text can also be cut before such a space. Checked at load with probes.
  bool space_is_boundary() const { return space_is_boundary_; }
  // Cuts valid UTF-8 `text` into consecutive segments of about `target_bytes`, each after the first
  // starting with '\n' or with a lone ' ' (see above); a single segment when neither is a boundary.
  std::vector<std::string_view> segment(std::string_view text, std::size_t target_bytes = 1024) const;
  // Encodes one segment of valid UTF-8. A segment that is not the first starts with '\n' or ' ': the dummy
  // "▁" SentencePiece would put in front of it is dropped (everything before the first <0x0A>, or the one
  // "▁" piece). Concatenating encode_segment over segment(text) equals encode(text).
  std::vector<std::int32_t> encode_segment(std::string_view segment, bool first) const;
  // SentencePiece's own decoding: control tokens (BOS/EOS) vanish, "<unk>" becomes " ⁇ ", runs of
  // byte pieces become their bytes (an invalid byte sequence becomes U+FFFD), "▁" becomes ' ', and
  // the first piece of the text loses its leading space when the model adds a dummy prefix.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  // The piece as it appears in a stream: "▁" -> ' ', "<0xNN>" -> the raw byte NN, control tokens
  // -> "", <unk> -> " ⁇ ". Streaming: print piece(id) for each id but drop the single leading ' ' of
  // the first piece after BOS or at the start of the output when add_dummy_prefix() is true; the
  // concatenation then equals decode() (for sequences that decode to valid UTF-8; a consumer that
  // needs valid UTF-8 at every step must hold back an incomplete trailing character).
  std::string piece(std::int32_t id) const override;
  std::int64_t vocab_size() const override;
  std::int32_t bos_id() const override;
  std::int32_t eos_id() const override;
  std::int32_t unk_id() const;
  std::string file_name() const override { return "tokenizer.model"; }
  void save(const std::string& path) const override;

  bool add_dummy_prefix() const { return add_dummy_prefix_; }
  // The pieces as stored in the model (with "▁").
  std::string raw_piece(std::int32_t id) const;
  const std::string& serialized() const { return serialized_; }

 private:
  SentencePieceTokenizer(std::string serialized, const std::string& name);
  void check_id(std::int32_t id) const;
  void detect_newline_boundary();
  void detect_space_boundary();
  // Whether segment() may cut `text` just before byte `i`.
  bool can_cut_at(std::string_view text, std::size_t i) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string serialized_;
  std::string name_;
  bool add_dummy_prefix_ = true;
  bool newline_is_boundary_ = false;
  std::int32_t newline_id_ = -1;  // the <0x0A> byte piece
  bool space_is_boundary_ = false;
  std::int32_t space_id_ = -1;              // the "▁" piece
  std::vector<std::string> stream_pieces_;  // piece(id) precomputed
};

struct SentencePieceTrainOptions {
  std::int64_t vocab_size = 4096;
  std::string model_type = "bpe";  // "bpe" or "unigram"
  // Fraction of characters covered by the vocabulary; the rest fall back to bytes.
  double character_coverage = 0.9995;
  // At most this many training sentences are used; larger corpora are subsampled (reservoir
  // sampling with zebra::Rng and `seed`, so the choice is deterministic). 0 = all.
  std::int64_t input_sentence_size = 1'000'000;
  // Sentences (lines) longer than this many bytes are cut into chunks at UTF-8 character
  // boundaries, preferring the last space, before training.
  std::int64_t max_sentence_length = 16384;
  std::uint64_t seed = 0x5EB7A11D;
  // Print SentencePiece's own training log on stderr.
  bool verbose = false;
};

struct SentencePieceTrainStats {
  std::int64_t documents = 0;
  std::int64_t sentences_seen = 0;  // non-empty lines/chunks offered
  std::int64_t sentences_used = 0;  // after subsampling
  std::int64_t long_lines_split = 0;
  double seconds = 0;
};

// Collects training sentences from documents: each document is split into lines (on '\n'; a trailing
// '\r' is kept as text), empty lines are dropped, lines over max_sentence_length are chunked, and a
// deterministic reservoir keeps at most input_sentence_size of them.
class SentencePieceSentenceSampler {
 public:
  explicit SentencePieceSentenceSampler(const SentencePieceTrainOptions& options);
  void add_document(std::string_view doc);
  const std::vector<std::string>& sentences() const { return sentences_; }
  const SentencePieceTrainStats& stats() const { return stats_; }

 private:
  void add_sentence(std::string_view s);

  SentencePieceTrainOptions options_;
  std::vector<std::string> sentences_;
  SentencePieceTrainStats stats_;
  std::uint64_t rng_state_;
};

// Trains a model on the sampler's sentences and writes it atomically to `output_path`. Settings:
// unk=0 bos=1 eos=2 pad=-1, byte_fallback, identity normalisation, split_digits,
// allow_whitespace_only_pieces, remove_extra_whitespaces=false, add_dummy_prefix=false (documents
// are encoded whole and '\n' falls back to the byte piece <0x0A>, so a line start looks the same in
// training and in encoding), one thread, no shuffling inside
// SentencePiece: the same sentences give byte-identical model files. Throws on training errors
// (e.g. a vocabulary too large for the corpus).
SentencePieceTrainStats train_sentencepiece(const SentencePieceSentenceSampler& sampler,
                                            const SentencePieceTrainOptions& options, const std::string& output_path);
// Convenience: samples sentences from `documents` and trains.
SentencePieceTrainStats train_sentencepiece(const std::vector<std::string>& documents,
                                            const SentencePieceTrainOptions& options, const std::string& output_path);

}  // namespace zebra
