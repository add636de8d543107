#include "zebra/data/token_dataset.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "zebra/util/error.hpp"

namespace zebra {

static_assert(std::endian::native == std::endian::little, "token datasets are read and written as little-endian");

namespace {

constexpr std::size_t kBufferBytes = 1 << 20;

template <typename T>
void put(std::uint8_t* dst, T v) {
  std::memcpy(dst, &v, sizeof(T));
}
template <typename T>
T get(const std::uint8_t* src) {
  T v;
  std::memcpy(&v, src, sizeof(T));
  return v;
}

void fsync_dir_of(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  std::string dir = parent.empty() ? "." : parent.string();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

TokenDatasetWriter::TokenDatasetWriter(const std::string& path, std::int64_t vocab_size, std::int32_t bos_id,
                                       std::int32_t eos_id, bool loss_mask)
    : path_(path), vocab_size_(vocab_size), bos_id_(bos_id), eos_id_(eos_id), loss_mask_(loss_mask) {
  ZEBRA_CHECK(vocab_size > 0 && vocab_size <= (std::int64_t{1} << 31), "token dataset '", path,
              "': vocab_size must be in [1, 2^31], got ", vocab_size);
  ZEBRA_CHECK(bos_id >= 0 && bos_id < vocab_size && eos_id >= 0 && eos_id < vocab_size, "token dataset '", path,
              "': BOS ", bos_id, " and EOS ", eos_id, " must be ids in [0, ", vocab_size, ")");
  width_ = vocab_size <= 65536 ? 2 : 4;
  tmp_path_ = path + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (file_ == nullptr) fail("cannot create '", tmp_path_, "': ", std::strerror(errno));
  // Placeholder header, rewritten by finish() once the counts are known.
  std::uint8_t zeros[kTokenDatasetHeaderBytes] = {};
  if (std::fwrite(zeros, 1, sizeof(zeros), file_) != sizeof(zeros)) {
    fail("cannot write '", tmp_path_, "': ", std::strerror(errno));
  }
  buffer_.reserve(kBufferBytes + 8);
}

TokenDatasetWriter::~TokenDatasetWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) ::unlink(tmp_path_.c_str());
}

void TokenDatasetWriter::append_token(std::int32_t id) {
  if (width_ == 2) {
    auto v = static_cast<std::uint16_t>(id);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v);
    buffer_.insert(buffer_.end(), b, b + 2);
  } else {
    auto v = static_cast<std::uint32_t>(id);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v);
    buffer_.insert(buffer_.end(), b, b + 4);
  }
  ++n_tokens_;
  if (buffer_.size() >= kBufferBytes) flush_buffer();
}

void TokenDatasetWriter::flush_buffer() {
  if (buffer_.empty()) return;
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
    fail("cannot write '", tmp_path_, "': ", std::strerror(errno));
  }
  buffer_.clear();
}

void TokenDatasetWriter::check_ids(std::span<const std::int32_t> ids) const {
  ZEBRA_CHECK(!finished_, "token dataset '", path_, "': document added after finish");
  for (std::size_t k = 0; k < ids.size(); ++k) {
    ZEBRA_CHECK(ids[k] >= 0 && ids[k] < vocab_size_, "token dataset '", path_, "': document ", n_docs(), " token ", k,
                " has id ", ids[k], ", outside the vocabulary [0, ", vocab_size_, ")");
  }
}

void TokenDatasetWriter::add_document(std::span<const std::int32_t> ids) {
  check_ids(ids);
  append_token(bos_id_);
  for (std::int32_t id : ids) append_token(id);
  append_token(eos_id_);
  if (loss_mask_) mask_.resize(static_cast<std::size_t>(n_tokens_), 1);
  offsets_.push_back(static_cast<std::uint64_t>(n_tokens_));
}

void TokenDatasetWriter::add_masked_document(std::span<const std::int32_t> ids, std::span<const std::uint8_t> mask) {
  ZEBRA_CHECK(loss_mask_, "token dataset '", path_, "': a masked document needs a writer made with loss_mask");
  ZEBRA_CHECK(mask.size() == ids.size(), "token dataset '", path_, "': document ", n_docs(), " has ", ids.size(),
              " tokens but ", mask.size(), " mask values");
  check_ids(ids);
  for (std::size_t k = 0; k < mask.size(); ++k) {
    ZEBRA_CHECK(mask[k] <= 1, "token dataset '", path_, "': document ", n_docs(), " mask value ", int{mask[k]},
                " at token ", k, " (expected 0 or 1)");
  }
  for (std::int32_t id : ids) append_token(id);
  mask_.insert(mask_.end(), mask.begin(), mask.end());
  offsets_.push_back(static_cast<std::uint64_t>(n_tokens_));
}

void TokenDatasetWriter::finish() {
  ZEBRA_CHECK(!finished_, "token dataset '", path_, "': finish called twice");
  flush_buffer();
  for (std::uint64_t off : offsets_) {
    std::uint8_t b[8];
    put(b, off);
    buffer_.insert(buffer_.end(), b, b + 8);
    if (buffer_.size() >= kBufferBytes) flush_buffer();
  }
  flush_buffer();
  if (loss_mask_ && !mask_.empty() && std::fwrite(mask_.data(), 1, mask_.size(), file_) != mask_.size()) {
    fail("cannot write '", tmp_path_, "': ", std::strerror(errno));
  }
  std::uint8_t header[kTokenDatasetHeaderBytes];
  std::memcpy(header, kTokenDatasetMagic, 8);
  put<std::uint32_t>(header + 8, loss_mask_ ? kTokenDatasetMaskedVersion : kTokenDatasetVersion);
  put<std::uint32_t>(header + 12, static_cast<std::uint32_t>(width_));
  put<std::uint64_t>(header + 16, static_cast<std::uint64_t>(vocab_size_));
  put<std::uint64_t>(header + 24, static_cast<std::uint64_t>(n_tokens_));
  put<std::uint64_t>(header + 32, static_cast<std::uint64_t>(n_docs()));
  if (std::fseek(file_, 0, SEEK_SET) != 0 || std::fwrite(header, 1, sizeof(header), file_) != sizeof(header) ||
      std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    fail("cannot write '", tmp_path_, "': ", std::strerror(errno));
  }
  int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) fail("cannot close '", tmp_path_, "': ", std::strerror(errno));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    fail("cannot rename '", tmp_path_, "' to '", path_, "': ", std::strerror(errno));
  }
  finished_ = true;
  fsync_dir_of(path_);
}

// ---------------------------------------------------------------------------------------------
// Reader

TokenDataset TokenDataset::open(const std::string& path, bool verify_tokens) {
  TokenDataset ds;
  ds.file_ = MappedFile(path);
  const std::uint8_t* p = ds.file_.data();
  const std::uint64_t size = ds.file_.size();
  ZEBRA_CHECK(size >= kTokenDatasetHeaderBytes, "token dataset '", path, "': file is ", size,
              " bytes, shorter than the ", kTokenDatasetHeaderBytes, "-byte header");
  ZEBRA_CHECK(std::memcmp(p, kTokenDatasetMagic, 8) == 0, "token dataset '", path,
              "': bad magic (expected \"ZEBRATOK\"); not a zebra token dataset");
  auto version = get<std::uint32_t>(p + 8);
  ZEBRA_CHECK(version == kTokenDatasetVersion || version == kTokenDatasetMaskedVersion, "token dataset '", path,
              "': version ", version, " is not supported (expected ", kTokenDatasetVersion, ", or ",
              kTokenDatasetMaskedVersion, " with a loss mask)");
  const bool masked = version == kTokenDatasetMaskedVersion;
  auto width = get<std::uint32_t>(p + 12);
  ZEBRA_CHECK(width == 2 || width == 4, "token dataset '", path, "': token width ", width, " (expected 2 or 4)");
  auto vocab = get<std::uint64_t>(p + 16);
  auto n_tokens = get<std::uint64_t>(p + 24);
  auto n_docs = get<std::uint64_t>(p + 32);
  ZEBRA_CHECK(vocab >= 1 && vocab <= (std::uint64_t{1} << 31), "token dataset '", path, "': vocab_size ", vocab,
              " (expected 1..2^31)");
  ZEBRA_CHECK(width == 4 || vocab <= 65536, "token dataset '", path, "': vocab_size ", vocab,
              " does not fit 2-byte tokens");
  // Each size is bounded by the file size before it is multiplied, so nothing below overflows.
  const std::uint64_t body = size - kTokenDatasetHeaderBytes;
  ZEBRA_CHECK(n_tokens <= body / width, "token dataset '", path, "': header says ", n_tokens, " tokens of ", width,
              " bytes, but the file has only ", body, " bytes after the header");
  const std::uint64_t token_bytes = n_tokens * width;
  const std::uint64_t mask_bytes = masked ? n_tokens : 0;
  ZEBRA_CHECK(mask_bytes <= body - token_bytes, "token dataset '", path, "': header says ", n_tokens,
              " tokens with a loss mask, but the file has only ", body, " bytes after the header");
  const std::uint64_t rest = body - token_bytes - mask_bytes;
  ZEBRA_CHECK(n_docs < rest / 8, "token dataset '", path, "': header says ", n_docs, " documents, needing ",
              "(n_docs + 1) x 8 offset bytes, but only ", rest, " bytes follow the tokens");
  const std::uint64_t expected = kTokenDatasetHeaderBytes + token_bytes + (n_docs + 1) * 8 + mask_bytes;
  ZEBRA_CHECK(expected == size, "token dataset '", path, "': expected ", expected, " bytes from the header (", n_tokens,
              " tokens, ", n_docs, " documents", masked ? ", a loss mask" : "", "), found ", size);
  ZEBRA_CHECK(n_tokens <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), "token dataset '", path,
              "': too many tokens");

  ds.width_ = static_cast<int>(width);
  ds.vocab_size_ = static_cast<std::int64_t>(vocab);
  ds.n_tokens_ = static_cast<std::int64_t>(n_tokens);
  ds.n_docs_ = static_cast<std::int64_t>(n_docs);
  const std::uint8_t* tok = p + kTokenDatasetHeaderBytes;  // 8-byte aligned within a page-aligned map
  if (width == 2) {
    ds.tokens16_ = reinterpret_cast<const std::uint16_t*>(tok);
  } else {
    ds.tokens32_ = reinterpret_cast<const std::uint32_t*>(tok);
  }

  ds.offsets_.resize(n_docs + 1);
  std::memcpy(ds.offsets_.data(), tok + token_bytes, (n_docs + 1) * 8);
  ZEBRA_CHECK(ds.offsets_[0] == 0, "token dataset '", path, "': first document offset is ", ds.offsets_[0],
              " (expected 0)");
  for (std::uint64_t d = 0; d < n_docs; ++d) {
    ZEBRA_CHECK(ds.offsets_[d + 1] >= ds.offsets_[d] && ds.offsets_[d + 1] <= n_tokens, "token dataset '", path,
                "': offset of document ", d + 1, " is ", ds.offsets_[d + 1], " after ", ds.offsets_[d],
                " (offsets must not decrease and must be <= n_tokens = ", n_tokens, ")");
  }
  ZEBRA_CHECK(ds.offsets_[n_docs] == n_tokens, "token dataset '", path, "': last offset is ", ds.offsets_[n_docs],
              " (expected n_tokens = ", n_tokens, ")");
  ds.n_scored_ = ds.n_tokens_;
  if (masked) {
    ds.mask_ = tok + token_bytes + (n_docs + 1) * 8;
    std::int64_t scored = 0;
    std::uint8_t max_value = 0;
    for (std::uint64_t i = 0; i < n_tokens; ++i) {
      scored += ds.mask_[i] != 0 ? 1 : 0;
      max_value = std::max(max_value, ds.mask_[i]);
    }
    if (max_value > 1) {
      for (std::uint64_t i = 0; i < n_tokens; ++i) {
        ZEBRA_CHECK(ds.mask_[i] <= 1, "token dataset '", path, "': loss mask value ", int{ds.mask_[i]}, " at token ", i,
                    " (expected 0 or 1)");
      }
    }
    ds.n_scored_ = scored;
  }

  if (verify_tokens) {
    // Max over blocks first (vectorises), locate the bad token only when there is one.
    std::uint64_t max_id = 0;
    if (width == 2) {
      for (std::uint64_t i = 0; i < n_tokens; ++i) max_id = std::max<std::uint64_t>(max_id, ds.tokens16_[i]);
    } else {
      for (std::uint64_t i = 0; i < n_tokens; ++i) max_id = std::max<std::uint64_t>(max_id, ds.tokens32_[i]);
    }
    if (max_id >= vocab) {
      for (std::int64_t i = 0; i < ds.n_tokens_; ++i) {
        auto id = static_cast<std::uint64_t>(width == 2 ? ds.tokens16_[i] : ds.tokens32_[i]);
        if (id >= vocab) {
          fail("token dataset '", path, "': token ", i, " has id ", id, ", outside the vocabulary [0, ", vocab, ")");
        }
      }
    }
  }
  return ds;
}

void TokenDataset::out_of_range(std::int64_t i) const {
  fail("token dataset '", path(), "': token index ", i, " out of range [0, ", n_tokens_, ")");
}

void TokenDataset::read(std::int64_t start, std::int64_t count, std::int32_t* out) const {
  ZEBRA_CHECK(start >= 0 && count >= 0 && start <= n_tokens_ && count <= n_tokens_ - start, "token dataset '", path(),
              "': read of [", start, ", ", start, " + ", count, ") out of range [0, ", n_tokens_, ")");
  if (width_ == 2) {
    for (std::int64_t k = 0; k < count; ++k) out[k] = tokens16_[start + k];
  } else {
    for (std::int64_t k = 0; k < count; ++k) out[k] = static_cast<std::int32_t>(tokens32_[start + k]);
  }
}

std::pair<std::int64_t, std::int64_t> TokenDataset::doc_range(std::int64_t d) const {
  ZEBRA_CHECK(d >= 0 && d < n_docs_, "token dataset '", path(), "': document ", d, " out of range [0, ", n_docs_, ")");
  return {static_cast<std::int64_t>(offsets_[d]), static_cast<std::int64_t>(offsets_[d + 1])};
}

std::int64_t TokenDataset::doc_of(std::int64_t i) const {
  if (i < 0 || i >= n_tokens_) out_of_range(i);
  // The last offset <= i; empty documents (equal offsets) resolve to the last of them, the one
  // that actually contains token i.
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), static_cast<std::uint64_t>(i));
  return static_cast<std::int64_t>(it - offsets_.begin()) - 1;
}

}  // namespace zebra
