// A read-only memory-mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace zebra {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws zebra::Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  ~MappedFile();

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Tells the kernel that bytes [offset, offset + n) will not be read again soon: their pages leave this
  // process's resident set (they are read back from the file if touched). A loader that converts tensor by
  // tensor calls it after each, so that its peak memory is the converted weights, not weights plus file.
  void drop_pages(std::size_t offset, std::size_t n) const;

 private:
  void release();
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

}  // namespace zebra
