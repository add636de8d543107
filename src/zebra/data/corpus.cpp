#include "zebra/data/corpus.hpp"

#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};

// Length of the valid UTF-8 sequence starting at p[0] (1..4), or the negated length of the maximal
// invalid subpart there (-1..-3): the lead byte plus the continuation bytes that were still
// acceptable before the sequence broke off. Ranges follow Unicode Table 3-7.
inline int utf8_step(const std::uint8_t* p, std::size_t n) {
  std::uint8_t c = p[0];
  if (c < 0x80) return 1;
  int len;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return -1;  // continuation byte, C0/C1 (always overlong) or F5..FF
  }
  for (int k = 1; k < len; ++k) {
    if (static_cast<std::size_t>(k) >= n) return -k;
    std::uint8_t b = p[k];
    std::uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return -k;
  }
  return len;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string strip_zst(std::string name) {
  if (ends_with(name, ".zst")) name.resize(name.size() - 4);
  return name;
}

bool corpus_file_name(const std::string& name) {
  std::string base = strip_zst(name);
  return ends_with(base, ".txt") || ends_with(base, ".md") || ends_with(base, ".jsonl") || ends_with(base, ".json");
}

// Sequential reader of a file's bytes, decompressing zstd (any number of frames) on the fly.
class ByteStream {
 public:
  explicit ByteStream(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) fail("cannot open '", path, "': ", std::strerror(errno));
    std::uint8_t head[4];
    std::size_t got = std::fread(head, 1, 4, file_);
    if (std::ferror(file_)) fail("cannot read '", path, "': ", std::strerror(errno));
    compressed_ = got == 4 && std::memcmp(head, kZstdMagic, 4) == 0;
    in_.assign(head, head + got);
    if (compressed_) {
      dstream_ = ZSTD_createDStream();
      if (dstream_ == nullptr) fail("cannot create a zstd decompressor for '", path, "'");
      ZSTD_initDStream(dstream_);
    }
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;
  ~ByteStream() {
    if (dstream_ != nullptr) ZSTD_freeDStream(dstream_);
    if (file_ != nullptr) std::fclose(file_);
  }

  // Appends the next bytes to `out`; returns false at the end of the stream.
  bool read_more(std::string& out) {
    if (!compressed_) {
      if (!in_.empty()) {
        out.append(reinterpret_cast<const char*>(in_.data()), in_.size());
        in_.clear();
        return true;
      }
      return read_raw(out) > 0;
    }
    for (;;) {
      if (in_pos_ == in_.size()) {
        in_.clear();
        in_pos_ = 0;
        std::string raw;
        if (read_raw(raw) == 0) {
          // A frame that was begun but not finished means the file was cut short.
          if (frame_open_) fail("'", path_, "': truncated zstd stream (unexpected end of file)");
          return false;
        }
        in_.assign(raw.begin(), raw.end());
      }
      std::size_t old = out.size();
      out.resize(old + kChunk);
      ZSTD_inBuffer input{in_.data(), in_.size(), in_pos_};
      ZSTD_outBuffer output{out.data() + old, kChunk, 0};
      std::size_t ret = ZSTD_decompressStream(dstream_, &output, &input);
      if (ZSTD_isError(ret)) {
        fail("'", path_, "': corrupt zstd data near compressed byte ", consumed_ + (input.pos - in_pos_), ": ",
             ZSTD_getErrorName(ret));
      }
      consumed_ += input.pos - in_pos_;
      in_pos_ = input.pos;
      frame_open_ = ret != 0;
      out.resize(old + output.pos);
      if (output.pos > 0) return true;
    }
  }

 private:
  static constexpr std::size_t kChunk = 1 << 20;

  std::size_t read_raw(std::string& out) {
    std::size_t old = out.size();
    out.resize(old + kChunk);
    std::size_t got = std::fread(out.data() + old, 1, kChunk, file_);
    if (std::ferror(file_)) fail("cannot read '", path_, "': ", std::strerror(errno));
    out.resize(old + got);
    return got;
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  bool compressed_ = false;
  ZSTD_DStream* dstream_ = nullptr;
  std::vector<std::uint8_t> in_;
  std::size_t in_pos_ = 0;
  std::size_t consumed_ = 0;
  bool frame_open_ = false;
};

class DocumentEmitter {
 public:
  DocumentEmitter(const CorpusOptions& options, const std::function<void(std::string_view)>& fn, CorpusStats& stats)
      : options_(options), fn_(fn), stats_(stats) {}

  bool done() const { return options_.max_docs >= 0 && stats_.documents >= options_.max_docs; }

  // `where` describes the document's origin for strict-mode errors; `base_offset` is the byte
  // offset of `text` within its (decompressed) file.
  void emit_raw(std::string_view text, const std::string& path, std::size_t base_offset, std::int64_t line) {
    if (done()) return;
    if (auto bad = find_invalid_utf8(text)) {
      if (options_.strict_utf8) {
        if (line > 0) {
          fail("'", path, "' line ", line, ": invalid UTF-8 at byte offset ", base_offset + *bad);
        }
        fail("'", path, "': invalid UTF-8 at byte offset ", base_offset + *bad);
      }
      std::string clean = sanitize_utf8(text, &stats_.replaced_utf8);
      emit_valid(clean);
    } else {
      emit_valid(text);
    }
  }

  void emit_valid(std::string_view text) {
    if (done()) return;
    if (text.empty()) {
      ++stats_.empty_documents;
      if (!options_.keep_empty) return;
    }
    ++stats_.documents;
    stats_.bytes += static_cast<std::int64_t>(text.size());
    stats_.characters += count_utf8_chars(text);
    fn_(text);
  }

  CorpusStats& stats() { return stats_; }

 private:
  const CorpusOptions& options_;
  const std::function<void(std::string_view)>& fn_;
  CorpusStats& stats_;
};

// `where` is "line N" (JSONL) or "array element N" (a JSON array file).
void emit_json_document(const nlohmann::json& j, const std::string& path, const std::string& where,
                        DocumentEmitter& out) {
  if (!j.is_object())
    fail("'", path, "' ", where, ": expected a JSON object with a \"text\" field, found ", j.type_name());
  auto it = j.find("text");
  if (it == j.end()) fail("'", path, "' ", where, ": the object has no \"text\" field");
  if (!it->is_string()) fail("'", path, "' ", where, ": \"text\" is a ", it->type_name(), ", expected a string");
  // The parser has already checked the string's UTF-8 (and the line was sanitised first).
  out.emit_valid(it->get_ref<const std::string&>());
}

void read_jsonl_line(std::string_view line, const std::string& path, std::int64_t line_no, std::size_t offset,
                     const CorpusOptions& options, DocumentEmitter& out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank line
  // nlohmann::json rejects invalid UTF-8 inside strings, so repair (or refuse) it before parsing.
  std::string repaired;
  if (auto bad = find_invalid_utf8(line)) {
    if (options.strict_utf8) fail("'", path, "' line ", line_no, ": invalid UTF-8 at byte offset ", offset + *bad);
    repaired = sanitize_utf8(line, &out.stats().replaced_utf8);
    line = repaired;
  }
  check_json_depth(line, str_cat("'", path, "' line ", line_no));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::exception& e) {
    fail("'", path, "' line ", line_no, ": invalid JSON: ", e.what());
  }
  emit_json_document(j, path, str_cat("line ", line_no), out);
}

void read_jsonl(ByteStream& stream, const std::string& path, const CorpusOptions& options, DocumentEmitter& out) {
  std::string buf;
  std::size_t start = 0;       // start of the current line in buf
  std::size_t buf_offset = 0;  // file offset of buf[0]
  std::int64_t line_no = 0;
  bool more = true;
  while (more && !out.done()) {
    std::size_t scan_from = buf.size();
    more = stream.read_more(buf);
    if (!more) break;
    std::size_t nl;
    while (!out.done() && (nl = buf.find('\n', std::max(scan_from, start))) != std::string::npos) {
      ++line_no;
      read_jsonl_line(std::string_view(buf).substr(start, nl - start), path, line_no, buf_offset + start, options, out);
      start = nl + 1;
      scan_from = start;
    }
    // Drop consumed lines so the buffer holds at most one partial line plus one chunk.
    if (start > 0) {
      buf.erase(0, start);
      buf_offset += start;
      start = 0;
    }
  }
  if (!out.done() && start < buf.size()) {
    ++line_no;
    read_jsonl_line(std::string_view(buf).substr(start), path, line_no, buf_offset + start, options, out);
  }
}

std::string read_all(ByteStream& stream) {
  std::string buf;
  while (stream.read_more(buf)) {
  }
  return buf;
}

void read_json_file(ByteStream& stream, const std::string& path, const CorpusOptions& options, DocumentEmitter& out) {
  std::string all = read_all(stream);
  std::size_t first = all.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || all[first] != '[') {
    // Not an array: treat as JSON lines. Re-split the text we already hold.
    std::size_t start = 0;
    std::int64_t line_no = 0;
    while (start < all.size() && !out.done()) {
      std::size_t nl = all.find('\n', start);
      std::size_t end = nl == std::string::npos ? all.size() : nl;
      ++line_no;
      read_jsonl_line(std::string_view(all).substr(start, end - start), path, line_no, start, options, out);
      start = end + 1;
    }
    return;
  }
  if (auto bad = find_invalid_utf8(all)) {
    if (options.strict_utf8) fail("'", path, "': invalid UTF-8 at byte offset ", *bad);
    all = sanitize_utf8(all, &out.stats().replaced_utf8);
  }
  check_json_depth(all, "'" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(all);
  } catch (const nlohmann::json::exception& e) {
    fail("'", path, "': invalid JSON: ", e.what());
  }
  if (!j.is_array()) fail("'", path, "': expected a JSON array of objects");
  std::int64_t index = 0;
  for (const auto& item : j) {
    if (out.done()) break;
    ++index;
    emit_json_document(item, path, str_cat("array element ", index), out);
  }
}

void read_text_file(ByteStream& stream, const std::string& path, DocumentEmitter& out) {
  std::string all = read_all(stream);
  std::string_view text = all;
  std::size_t base = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    text.remove_prefix(3);
    base = 3;
  }
  out.emit_raw(text, path, base, 0);
}

}  // namespace

std::string_view as_valid_utf8(std::string_view text, std::string& storage) {
  if (!find_invalid_utf8(text)) return text;
  storage = sanitize_utf8(text);
  return storage;
}

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  std::size_t n = text.size(), i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    int step = utf8_step(p + i, n - i);
    if (step < 0) return i;
    i += static_cast<std::size_t>(step);
  }
  return std::nullopt;
}

std::string sanitize_utf8(std::string_view text, std::int64_t* n_replaced) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  std::size_t n = text.size(), i = 0, run = 0;  // [run, i) is valid and not yet copied
  std::int64_t replaced = 0;
  while (i < n) {
    int step = utf8_step(p + i, n - i);
    if (step > 0) {
      i += static_cast<std::size_t>(step);
      continue;
    }
    out.append(text.substr(run, i - run));
    out.append(kReplacement);
    ++replaced;
    i += static_cast<std::size_t>(-step);
    run = i;
  }
  out.append(text.substr(run));
  if (n_replaced != nullptr) *n_replaced += replaced;
  return out;
}

std::int64_t count_utf8_chars(std::string_view text) {
  std::int64_t count = 0;
  for (char c : text) count += (static_cast<std::uint8_t>(c) & 0xC0) != 0x80;
  return count;
}

std::string read_maybe_compressed(const std::string& path) {
  ByteStream stream(path);
  return read_all(stream);
}

std::vector<std::string> expand_corpus_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    auto status = fs::status(input, ec);
    if (ec || !fs::exists(status)) fail("corpus input '", input, "' does not exist");
    if (fs::is_directory(status)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(input, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file() && corpus_file_name(it->path().filename().string())) {
          found.push_back(it->path().string());
        }
      }
      if (ec) fail("cannot list folder '", input, "': ", ec.message());
      // Byte-wise order of the full path: the same on every machine and locale.
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(input);
    }
  }
  if (files.empty())
    fail(
        "no corpus files found in the inputs (folders contribute *.txt, *.md, *.jsonl, *.json, optionally "
        ".zst)");
  return files;
}

void for_each_document(const std::vector<std::string>& inputs, const CorpusOptions& options,
                       const std::function<void(std::string_view doc)>& fn, CorpusStats* stats) {
  CorpusStats local;
  CorpusStats& st = stats != nullptr ? *stats : local;
  DocumentEmitter out(options, fn, st);
  for (const auto& path : expand_corpus_inputs(inputs)) {
    if (out.done()) break;
    ++st.files;
    ByteStream stream(path);
    std::string base = strip_zst(fs::path(path).filename().string());
    if (ends_with(base, ".jsonl")) {
      read_jsonl(stream, path, options, out);
    } else if (ends_with(base, ".json")) {
      read_json_file(stream, path, options, out);
    } else {
      read_text_file(stream, path, out);
    }
  }
}

void for_each_line(const std::string& path,
                   const std::function<void(std::string_view line, std::int64_t line_no)>& fn) {
  const std::string data = read_maybe_compressed(path);
  std::size_t pos = 0;
  std::int64_t line_no = 0;
  while (pos < data.size()) {
    std::size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    fn(std::string_view(data).substr(pos, end - pos), ++line_no);
    pos = end + 1;
  }
}

}  // namespace zebra
