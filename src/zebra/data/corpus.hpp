// Corpus reading: plain text files, folders, JSONL with a "text" field, each optionally
// zstd-compressed. Documents come out as valid UTF-8, one callback per document, in a deterministic
// order (inputs in the order given; folders walked recursively in sorted path order).
//
// Kinds of file (decided by name after stripping a ".zst" suffix; compression is decided by the
// zstd magic number, so a mis-named compressed file still reads):
//   *.jsonl          one JSON object per line with a string "text" (other fields ignored); blank
//                    lines are skipped; a line that is not JSON, not an object, or has no string
//                    "text" is an error naming the file and line number.
//   *.json           a JSON array of such objects when the file starts with '[', else as *.jsonl.
//   anything else    plain text: the whole file is one document (a leading UTF-8 byte-order mark
//                    is dropped).
// Folders contribute files ending in .txt .md .jsonl .json, each optionally with .zst.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

struct CorpusOptions {
  // Invalid UTF-8 is an error naming the file and byte offset (of the decompressed stream)
  // instead of being replaced by U+FFFD.
  bool strict_utf8 = false;
  // Stop after this many (non-empty) documents; negative = all.
  std::int64_t max_docs = -1;
  // Empty documents (zero bytes) are counted and, unless this is set, not passed on.
  bool keep_empty = false;
};

struct CorpusStats {
  std::int64_t files = 0;
  std::int64_t documents = 0;        // passed to the callback
  std::int64_t empty_documents = 0;  // zero-byte documents (skipped unless keep_empty)
  std::int64_t bytes = 0;            // UTF-8 bytes of the documents passed on (after sanitising)
  std::int64_t characters = 0;       // Unicode code points of the documents passed on
  std::int64_t replaced_utf8 = 0;    // invalid UTF-8 sequences replaced by U+FFFD
};

// Expands the inputs into the list of files to read: files stay as given, folders become their
// matching files (recursively, sorted by path). Throws when an input does not exist or when the
// whole list comes out empty.
std::vector<std::string> expand_corpus_inputs(const std::vector<std::string>& inputs);

// Calls `fn` with each document of the inputs in order. The view is valid only during the call.
// Adds to `*stats` when given (it is not reset).
void for_each_document(const std::vector<std::string>& inputs, const CorpusOptions& options,
                       const std::function<void(std::string_view doc)>& fn, CorpusStats* stats = nullptr);

// Returns `text` with each maximal invalid UTF-8 subsequence (Unicode §3.9, "U+FFFD substitution of
// maximal subparts") replaced by U+FFFD; surrogates (ED A0..BF xx) and overlong forms are invalid.
// Adds the number of replacements to `*n_replaced` when given.
std::string sanitize_utf8(std::string_view text, std::int64_t* n_replaced = nullptr);

// `text` itself when it is valid UTF-8, else sanitize_utf8(text) kept in `storage`.
std::string_view as_valid_utf8(std::string_view text, std::string& storage);

// Byte offset of the first invalid UTF-8 sequence, or nullopt when `text` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Number of code points in valid UTF-8 (counts the bytes that are not continuation bytes).
std::int64_t count_utf8_chars(std::string_view text);

// Calls fn(line, line_no) for each line of a (maybe compressed) file, without its '\n', numbered from 1; a last
// line without '\n' counts, an empty file has none.
void for_each_line(const std::string& path, const std::function<void(std::string_view line, std::int64_t line_no)>& fn);

// Reads a whole file, decompressing it when it starts with the zstd magic number. Throws naming the
// path on I/O or decompression errors.
std::string read_maybe_compressed(const std::string& path);

}  // namespace zebra
