// GGUF (llama.cpp / ggml's model file), versions 2 and 3, little-endian:
//   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
//   n_kv x      { string key, u32 value type, value }
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
//   padding to `general.alignment` (default 32), then the data section; tensor offsets are relative to
//   its start and multiples of the alignment.
// string = u64 length + bytes (no terminator); array = u32 element type, u64 count, elements (arrays of
// arrays nest). ne[0] is the innermost dimension (the columns): the row-major shape is ne reversed.
// Version 1 (u32 counts and lengths) is refused. Version 3 differs from 2 only by allowing big-endian
// files, which this reader refuses (they read as a version number with the bytes swapped).
//
// The file is untrusted. Every count and length is bounded by the bytes left in the file and by the
// caps below before anything is allocated for it; nesting depth is capped; tensor shapes are
// overflow-checked, rows must be whole blocks, every tensor's bytes must lie inside the data section at
// an aligned offset without overlapping another; duplicate keys and tensor names, unknown value types
// and unknown ggml types are refused. Errors name the file, the section, key or tensor, what was
// expected and what was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "zebra/ops/weight.hpp"
#include "zebra/util/dtype.hpp"
#include "zebra/util/mapped_file.hpp"

namespace zebra {

inline constexpr std::uint64_t kGgufMaxStringBytes = 16u << 20;  // one key or string value
inline constexpr std::uint64_t kGgufMaxKeys = 1u << 20;
inline constexpr std::uint64_t kGgufMaxTensors = 1u << 20;
inline constexpr int kGgufMaxArrayDepth = 8;  // arrays of arrays of ...
inline constexpr std::uint32_t kGgufMaxDims = 4;
inline constexpr std::uint32_t kGgufDefaultAlignment = 32;
inline constexpr std::uint32_t kGgufMaxAlignment = 1u << 20;

// GGUF metadata value types (the ids stored in the file).
enum class GgufType : std::uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* to_string(GgufType t);  // "u32", "string", "array", ...

// ggml tensor type ids of the supported dtypes (F32=0, F16=1, Q4_0=2, Q4_1=3, Q8_0=8, Q4_K=12, Q5_K=13,
// Q6_K=14, BF16=30). ggml_type_to_dtype throws naming the id and the supported ones.
std::uint32_t dtype_to_ggml_type(DType d);
DType ggml_type_to_dtype(std::uint32_t ggml_type);

// One metadata value. Owns its data (the reader copies out of the mapping; bounded by the file size).
struct GgufValue {
  GgufType type = GgufType::kU8;
  std::uint64_t bits = 0;              // scalars: the little-endian bytes, zero-extended (bool: 0 or 1)
  std::string str;                     // kString
  GgufType elem_type = GgufType::kU8;  // kArray: the element type
  std::uint64_t count = 0;             // kArray: the element count
  std::vector<std::uint8_t> raw;       // kArray of scalars: count elements, packed little-endian
  std::vector<std::string> strings;    // kArray of kString
  std::vector<GgufValue> arrays;       // kArray of kArray

  // Builders (the GGUF type follows from T: uint8_t..int64_t, float, double, bool).
  template <typename T>
  static GgufValue scalar(T v);
  static GgufValue string(std::string s);
  template <typename T>
  static GgufValue array(std::span<const T> values);
  static GgufValue string_array(std::vector<std::string> values);
  static GgufValue array_of_arrays(std::vector<GgufValue> values);  // every element must be an array

  bool is_integer() const;  // u8..i64 (not bool)
  bool is_float() const;    // f32, f64
  // Scalar accessors; nullopt when the type does not match (an integer that does not fit int64 too).
  std::optional<std::int64_t> as_int() const;
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  // Element i of an array of integers / floats (i < count; the element type must match).
  std::int64_t int_at(std::uint64_t i) const;
  double float_at(std::uint64_t i) const;
  // "u32", "array[string]", "array[array[i32]]" ...
  std::string type_name() const;
};

struct GgufTensor {
  std::string name;
  std::uint32_t ggml_type = 0;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> ne;     // ggml order: ne[0] is the innermost dimension (the columns)
  std::vector<std::int64_t> shape;  // row-major: ne reversed
  std::int64_t numel = 0;
  std::uint64_t offset = 0;  // bytes from the start of the data section
  std::size_t nbytes = 0;    // stored bytes: (numel / ne[0]) rows of dtype_row_bytes(dtype, ne[0])
  std::int64_t rows() const { return ne[0] == 0 ? 0 : numel / ne[0]; }
  std::int64_t cols() const { return ne[0]; }
};

class GgufFile {
 public:
  // Maps and validates the whole header; throws zebra::Error naming the path and the problem.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  std::size_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Metadata in file order, and lookup by key.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // null when absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw naming the file, the key, the expected and the found type (or "absent").
  // get_int accepts any integer type whose value fits int64; get_float accepts f32 and f64.
  const GgufValue& value(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<std::int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  // The same, nullopt when the key is absent (still throwing when present with the wrong type).
  std::optional<std::string> find_string(const std::string& key) const;
  std::optional<std::int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::optional<bool> find_bool(const std::string& key) const;

  // Tensors in file order, and lookup by name.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;  // null when absent
  const GgufTensor& tensor(const std::string& name) const;       // throws naming the file and tensor
  // The tensor's stored bytes inside the mapping (valid while this GgufFile lives).
  std::span<const std::uint8_t> raw(const GgufTensor& t) const;
  std::span<const std::uint8_t> raw(const std::string& name) const { return raw(tensor(name)); }
  // The tensor as a [rows, cols] matrix: cols = ne[0], rows = the product of the other dimensions.
  WeightMatrix matrix(const std::string& name) const;

 private:
  MappedFile file_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = kGgufDefaultAlignment;
  std::size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

// One tensor to write: `bytes` holds exactly the stored bytes of `shape` (row-major; the writer stores
// ne = shape reversed) in `dtype`: rows of dtype_row_bytes(dtype, shape.back()) bytes.
struct GgufTensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::span<const std::uint8_t> bytes;
};

// Writes a GGUF v3 file atomically (temporary name, fsync, rename) with the metadata in the order given
// and the tensors laid out in order, each at an offset aligned to `alignment` and padded after, as
// llama.cpp writes them. When `alignment` is not 32 the metadata must carry general.alignment (u32)
// with that value. Throws on duplicate keys or names, a shape / byte-count mismatch, an alignment that
// is not a power of two, or a value the format cannot hold.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors, std::uint32_t alignment = kGgufDefaultAlignment);

// The bytes write_gguf writes (tests corrupt them to make hostile files).
std::vector<std::uint8_t> gguf_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                     const std::vector<GgufTensorToWrite>& tensors,
                                     std::uint32_t alignment = kGgufDefaultAlignment);

}  // namespace zebra
