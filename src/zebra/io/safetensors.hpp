// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}            (optional, string values only)
// then the data section; offsets are bytes relative to its start, tensors are row-major, little-endian.
//
// The reader memory-maps the file and treats it as untrusted: the header length is bounded and must fit
// the file, the JSON must parse, names must be unique, dtypes known, shape products must not overflow,
// every tensor's byte range must lie inside the data section with end - begin == numel * dtype size, and
// the tensors must tile the data section exactly (no overlap, no hole, no trailing bytes), as the
// reference implementation requires. Errors name the file, the tensor, what was expected and what was
// found.
//
// Dtypes: F32, F16, BF16 and F64 are read (converted to float or double) and written (from float or
// double, rounding to nearest, ties to even).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "zebra/util/dtype.hpp"
#include "zebra/util/mapped_file.hpp"

namespace zebra {

// The largest header accepted by the reader (the JSON part), in bytes.
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100u << 20;

struct TensorEntry {
  std::string name;
  std::string dtype_name;           // as stored ("F32", "I64", ...)
  bool convertible = true;          // a floating dtype read() converts; false for the integer/fp8 dtypes
  DType dtype = DType::kF32;        // meaningful only when convertible
  std::vector<std::int64_t> shape;  // row-major; [] is a scalar (numel 1)
  std::size_t numel = 0;
  std::size_t begin = 0;  // byte offsets relative to the data section
  std::size_t end = 0;
};

std::string shape_string(const std::vector<std::int64_t>& shape);  // "[3, 4]"

class SafetensorsFile {
 public:
  // Maps and validates the file; throws zebra::Error naming the path and the problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws naming the file and the tensor when absent.
  const TensorEntry& entry(const std::string& name) const;

  // Converts tensor `name` to T (float or double) into out[numel]; throws when the tensor is absent
  // or numel_expected differs from its element count.
  template <typename T>
  void read(const std::string& name, T* out, std::size_t numel_expected) const;
  // Same, and the shape must equal `expected_shape` exactly (the error shows both shapes).
  template <typename T>
  void read(const std::string& name, T* out, const std::vector<std::int64_t>& expected_shape) const;

  // The tensor's stored bytes (not necessarily aligned).
  std::span<const std::uint8_t> raw(const std::string& name) const;
  // The tensor was read and will not be again soon: its pages leave the resident set (MappedFile::drop_pages).
  void drop(const std::string& name) const;

 private:
  MappedFile file_;
  std::size_t data_start_ = 0;  // 8 + header length
  std::map<std::string, TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: exactly one of f32 / f64 is non-null and holds numel(shape) values.
struct TensorToWrite {
  std::string name;
  std::vector<std::int64_t> shape;
  const float* f32 = nullptr;
  const double* f64 = nullptr;
  std::optional<DType> dtype;  // stored dtype; unset: the `dtype` argument of write_safetensors
};

// Writes a safetensors file atomically (temporary name, fsync, rename): readers see the old file or
// the whole new one. Tensors are stored in the order given; the header is padded with spaces to a
// multiple of 8 bytes so that the data section is 8-byte aligned. Throws on duplicate or empty names,
// negative dimensions, or a tensor without data.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, DType dtype = DType::kF32);

}  // namespace zebra
