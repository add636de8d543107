// Token dataset files: a memory-mapped token stream plus a document index (DESIGN.md §3).
//
// Layout (all integers little-endian):
//   offset 0   char[8]   magic "ZEBRATOK"
//          8   uint32    version: 1, or 2 for a file with a loss mask
//         12   uint32    token width in bytes: 2 (vocab_size <= 65536) or 4
//         16   uint64    vocab_size
//         24   uint64    n_tokens
//         32   uint64    n_docs
//         40   width x n_tokens          the token stream
//         ...  uint64 x (n_docs + 1)     offsets: token index of each document's first token,
//                                        then n_tokens (not necessarily 8-byte aligned)
//   version 2 only:
//          ...  uint8 x n_tokens          loss mask: 1 = the token is scored when it is a target, 0 = it is
//                                        context only (instruction data: only the assistant's tokens are 1)
// A text document is stored as BOS, its tokens, EOS, so consecutive documents read as one stream; a masked
// document (a rendered conversation) is stored as given, since its chat template decides BOS and end markers.
// Version 1 files are still read (everything scored); the writer writes version 1 unless a mask is asked for.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "zebra/util/mapped_file.hpp"

namespace zebra {

inline constexpr char kTokenDatasetMagic[8] = {'Z', 'E', 'B', 'R', 'A', 'T', 'O', 'K'};
inline constexpr std::uint32_t kTokenDatasetVersion = 1;        // no loss mask
inline constexpr std::uint32_t kTokenDatasetMaskedVersion = 2;  // with a loss mask
inline constexpr std::size_t kTokenDatasetHeaderBytes = 40;

// Streams documents to `<path>.tmp.<pid>`; finish() writes the index and header, fsyncs and renames
// to `path`, so `path` is either absent/old or complete. Dropping the writer without finish()
// removes the temporary file.
class TokenDatasetWriter {
 public:
  // Token ids must lie in [0, vocab_size); bos_id and eos_id wrap every text document. With loss_mask the file
  // is version 2 and documents come with their mask (add_masked_document); the mask is held in memory (one
  // byte per token) until finish().
  TokenDatasetWriter(const std::string& path, std::int64_t vocab_size, std::int32_t bos_id, std::int32_t eos_id,
                     bool loss_mask = false);
  TokenDatasetWriter(const TokenDatasetWriter&) = delete;
  TokenDatasetWriter& operator=(const TokenDatasetWriter&) = delete;
  ~TokenDatasetWriter();

  // Appends BOS + ids + EOS as one document (all scored in a masked file). Throws on an id outside
  // [0, vocab_size).
  void add_document(std::span<const std::int32_t> ids);
  // Appends ids as one document exactly as given, with mask[i] in {0, 1} for ids[i]. Only with loss_mask;
  // throws on a size mismatch, a mask value other than 0/1 or an id outside the vocabulary.
  void add_masked_document(std::span<const std::int32_t> ids, std::span<const std::uint8_t> mask);
  void finish();

  std::int64_t n_tokens() const { return n_tokens_; }
  std::int64_t n_docs() const { return static_cast<std::int64_t>(offsets_.size()) - 1; }
  int token_width() const { return width_; }
  bool has_loss_mask() const { return loss_mask_; }

 private:
  void check_ids(std::span<const std::int32_t> ids) const;
  void append_token(std::int32_t id);
  void flush_buffer();

  std::string path_, tmp_path_;
  std::int64_t vocab_size_;
  std::int32_t bos_id_, eos_id_;
  int width_;
  std::FILE* file_ = nullptr;
  std::vector<std::uint8_t> buffer_;
  std::int64_t n_tokens_ = 0;
  std::vector<std::uint64_t> offsets_{0};
  bool loss_mask_ = false;
  std::vector<std::uint8_t> mask_;  // [n_tokens] with loss_mask
  bool finished_ = false;
};

// A read-only, memory-mapped token dataset. open() validates everything that can make a later
// access go out of bounds: magic, version, width, vocab size, that the header's sizes (computed
// with overflow checks) add up to exactly the file size, and that the offsets start at 0, never
// decrease and end at n_tokens. Token values are checked against vocab_size at open too (one
// sequential pass over the mapping, about as fast as reading the file) unless verify_tokens is
// false, so token() never returns an out-of-vocabulary id for a file that opened with checking. A version 2
// file's mask must hold only 0 and 1 (checked at open).
class TokenDataset {
 public:
  TokenDataset() = default;
  static TokenDataset open(const std::string& path, bool verify_tokens = true);

  std::int64_t n_tokens() const { return n_tokens_; }
  std::int64_t n_docs() const { return n_docs_; }
  std::int64_t vocab_size() const { return vocab_size_; }
  int token_width() const { return width_; }
  const std::string& path() const { return file_.path(); }
  // Version 2: whether a token is scored as a target. Without a mask every token is.
  bool has_loss_mask() const { return mask_ != nullptr; }
  bool scored(std::int64_t i) const {
    if (i < 0 || i >= n_tokens_) out_of_range(i);
    return mask_ == nullptr || mask_[i] != 0;
  }
  // Number of scored tokens (n_tokens without a mask), counted at open.
  std::int64_t n_scored() const { return n_scored_; }

  // Token at stream index i, 0 <= i < n_tokens (checked).
  std::int32_t token(std::int64_t i) const {
    if (i < 0 || i >= n_tokens_) out_of_range(i);
    return width_ == 2 ? static_cast<std::int32_t>(tokens16_[i]) : static_cast<std::int32_t>(tokens32_[i]);
  }
  // Copies tokens [start, start + count) to out[0..count) (range checked).
  void read(std::int64_t start, std::int64_t count, std::int32_t* out) const;

  // [begin, end) token range of document d, 0 <= d < n_docs (checked).
  std::pair<std::int64_t, std::int64_t> doc_range(std::int64_t d) const;
  // Index of the document containing token i (binary search over the offsets).
  std::int64_t doc_of(std::int64_t i) const;
  // n_docs + 1 offsets, as validated at open.
  std::span<const std::uint64_t> offsets() const { return offsets_; }

 private:
  [[noreturn]] void out_of_range(std::int64_t i) const;

  MappedFile file_;
  const std::uint16_t* tokens16_ = nullptr;
  const std::uint32_t* tokens32_ = nullptr;
  const std::uint8_t* mask_ = nullptr;  // [n_tokens] in a version 2 file
  int width_ = 0;
  std::int64_t vocab_size_ = 0, n_tokens_ = 0, n_docs_ = 0, n_scored_ = 0;
  std::vector<std::uint64_t> offsets_;
};

}  // namespace zebra
