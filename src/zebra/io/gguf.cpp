#include "zebra/io/gguf.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
// Nodes of nested arrays (arrays of arrays) over the whole file: each costs far more memory than its 12
// bytes in the file, so their number is capped on top of the file size.
constexpr std::uint64_t kMaxNestedArrays = 1u << 16;

// A name or string value for an error message: at most 80 characters, control bytes escaped.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += str_cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  if (s.size() > 80) out += str_cat("... (", s.size(), " bytes)");
  return out;
}

bool is_scalar(GgufType t) { return t != GgufType::kString && t != GgufType::kArray; }

// Bytes of a scalar type (0 for string and array).
std::size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool: return 1;
    case GgufType::kU16:
    case GgufType::kI16: return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32: return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64: return 8;
    case GgufType::kString:
    case GgufType::kArray: return 0;
  }
  return 0;
}

bool known_type(std::uint32_t id) { return id <= static_cast<std::uint32_t>(GgufType::kF64); }

bool integer_type(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kU16:
    case GgufType::kI16:
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kU64:
    case GgufType::kI64: return true;
    default: return false;
  }
}

// The integer in `bits` (zero-extended little-endian bytes) of integer type t; nullopt when a u64 does
// not fit int64.
std::optional<std::int64_t> decode_int(GgufType t, std::uint64_t bits) {
  switch (t) {
    case GgufType::kU8: return static_cast<std::int64_t>(bits & 0xffu);
    case GgufType::kI8: return static_cast<std::int8_t>(bits & 0xffu);
    case GgufType::kU16: return static_cast<std::int64_t>(bits & 0xffffu);
    case GgufType::kI16: return static_cast<std::int16_t>(bits & 0xffffu);
    case GgufType::kU32: return static_cast<std::int64_t>(bits & 0xffffffffu);
    case GgufType::kI32: return static_cast<std::int32_t>(bits & 0xffffffffu);
    case GgufType::kI64: return static_cast<std::int64_t>(bits);
    case GgufType::kU64:
      if (bits > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
      return static_cast<std::int64_t>(bits);
    default: return std::nullopt;
  }
}

std::optional<double> decode_float(GgufType t, std::uint64_t bits) {
  if (t == GgufType::kF32) return static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
  if (t == GgufType::kF64) return std::bit_cast<double>(bits);
  return std::nullopt;
}

std::uint64_t load_bits(const std::uint8_t* p, std::size_t n) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, p, n);  // little-endian host: the low n bytes
  return bits;
}

struct DtypeId {
  DType dtype;
  std::uint32_t id;
};
constexpr DtypeId kGgmlTypes[] = {
    {DType::kF32, 0},   {DType::kF16, 1},   {DType::kQ4_0, 2},  {DType::kQ4_1, 3},  {DType::kQ8_0, 8},
    {DType::kQ4_K, 12}, {DType::kQ5_K, 13}, {DType::kQ6_K, 14}, {DType::kBF16, 30},
};

std::string supported_ggml_types() {
  std::string s;
  for (const DtypeId& t : kGgmlTypes) s += str_cat(s.empty() ? "" : ", ", to_string(t.dtype), "=", t.id);
  return s;
}

std::string text(const std::string& s) { return s; }
std::string text(const char* s) { return s; }
template <typename D>
requires std::is_invocable_r_v<std::string, D> std::string text(const D& describe) { return describe(); }

// Bounds-checked sequential reads over the mapped header; every failure names the file, the section
// being read, the offset and what was needed.
class Cursor {
 public:
  Cursor(std::string where, const std::uint8_t* data, std::size_t size)
      : where_(std::move(where)), data_(data), size_(size) {}

  std::size_t pos() const { return pos_; }
  std::size_t left() const { return size_ - pos_; }
  const std::string& where() const { return where_; }

  // Every read takes a description of what it reads for the error message; a callable (returning the
  // text) defers building it to the failure path, which matters for arrays of many strings.
  template <typename D>
  void need(std::uint64_t n, const D& what) const {
    if (n > left()) {
      fail(where_, ": truncated in ", text(what), ": needs ", n, " bytes at offset ", pos_, ", the file has ", left(),
           " left (", size_, " in all)");
    }
  }
  template <typename T, typename D>
  T get(const D& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename D>
  const std::uint8_t* take(std::size_t n, const D& what) {
    need(n, what);
    const std::uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename D>
  std::string string(const D& what) {
    const auto n = get<std::uint64_t>([&] { return text(what) + " (string length)"; });
    if (n > kGgufMaxStringBytes) {
      fail(where_, ": ", text(what), ": string length ", n, " exceeds the limit of ", kGgufMaxStringBytes, " bytes");
    }
    need(n, [&] { return text(what) + str_cat(" (a string of ", n, " bytes)"); });
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  // A count of items of at least `min_item_bytes` each: bounded by the bytes left and by `cap`, so that
  // nothing is ever allocated for items the file cannot hold.
  std::uint64_t count(const std::string& what, std::uint64_t min_item_bytes, std::uint64_t cap) {
    const auto n = get<std::uint64_t>(what);
    if (n > cap) fail(where_, ": ", what, " = ", n, " exceeds the limit of ", cap);
    if (min_item_bytes > 0 && n > left() / min_item_bytes) {
      fail(where_, ": ", what, " = ", n, " items of at least ", min_item_bytes, " bytes each cannot fit in the ",
           left(), " bytes left in the file");
    }
    return n;
  }

 private:
  std::string where_;
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

GgufType value_type(Cursor& c, const std::string& what) {
  const auto id = c.get<std::uint32_t>(what);
  if (!known_type(id)) fail(c.where(), ": ", what, ": unknown value type id ", id, " (known: 0..12)");
  return static_cast<GgufType>(id);
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& what, int depth, std::uint64_t& nested) {
  GgufValue v;
  v.type = type;
  if (is_scalar(type)) {
    const std::size_t n = scalar_size(type);
    v.bits = load_bits(c.take(n, what), n);
    if (type == GgufType::kBool && v.bits > 1) fail(c.where(), ": ", what, ": bool value ", v.bits, " is not 0 or 1");
    return v;
  }
  if (type == GgufType::kString) {
    v.str = c.string(what);
    return v;
  }
  v.elem_type = value_type(c, what + " (array element type)");
  const std::string cw = what + " (array count)";
  if (is_scalar(v.elem_type)) {
    const std::size_t es = scalar_size(v.elem_type);
    v.count = c.count(cw, es, std::numeric_limits<std::uint64_t>::max());
    const std::uint8_t* p = c.take(static_cast<std::size_t>(v.count) * es, what);
    v.raw.assign(p, p + static_cast<std::size_t>(v.count) * es);
    if (v.elem_type == GgufType::kBool) {
      for (std::uint64_t i = 0; i < v.count; ++i) {
        if (v.raw[i] > 1) fail(c.where(), ": ", what, ": bool element ", i, " is ", int{v.raw[i]}, ", not 0 or 1");
      }
    }
  } else if (v.elem_type == GgufType::kString) {
    v.count = c.count(cw, 8, std::numeric_limits<std::uint64_t>::max());
    v.strings.reserve(static_cast<std::size_t>(v.count));
    for (std::uint64_t i = 0; i < v.count; ++i)
      v.strings.push_back(c.string([&] { return str_cat(what, " element ", i); }));
  } else {
    if (depth + 1 >= kGgufMaxArrayDepth) {
      fail(c.where(), ": ", what, ": arrays nested deeper than ", kGgufMaxArrayDepth, " levels");
    }
    v.count = c.count(cw, 12, kMaxNestedArrays - nested);
    nested += v.count;
    v.arrays.reserve(static_cast<std::size_t>(v.count));
    for (std::uint64_t i = 0; i < v.count; ++i) {
      v.arrays.push_back(read_value(c, GgufType::kArray, str_cat(what, " element ", i), depth + 1, nested));
    }
  }
  return v;
}

template <typename T>
constexpr GgufType gguf_type_of() {
  if constexpr (std::is_same_v<T, bool>)
    return GgufType::kBool;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return GgufType::kU8;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return GgufType::kI8;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return GgufType::kU16;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return GgufType::kI16;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return GgufType::kU32;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return GgufType::kI32;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return GgufType::kU64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return GgufType::kI64;
  else if constexpr (std::is_same_v<T, float>)
    return GgufType::kF32;
  else if constexpr (std::is_same_v<T, double>)
    return GgufType::kF64;
  else
    static_assert(sizeof(T) == 0, "no GGUF type for T");
}

}  // namespace

const char* to_string(GgufType t) {
  switch (t) {
    case GgufType::kU8: return "u8";
    case GgufType::kI8: return "i8";
    case GgufType::kU16: return "u16";
    case GgufType::kI16: return "i16";
    case GgufType::kU32: return "u32";
    case GgufType::kI32: return "i32";
    case GgufType::kF32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "u64";
    case GgufType::kI64: return "i64";
    case GgufType::kF64: return "f64";
  }
  return "unknown";
}

std::uint32_t dtype_to_ggml_type(DType d) {
  for (const DtypeId& t : kGgmlTypes) {
    if (t.dtype == d) return t.id;
  }
  fail("GGUF: dtype ", to_string(d), " has no ggml type (supported: ", supported_ggml_types(), ")");
}

DType ggml_type_to_dtype(std::uint32_t id) {
  for (const DtypeId& t : kGgmlTypes) {
    if (t.id == id) return t.dtype;
  }
  fail("unknown or unsupported ggml type id ", id, " (supported: ", supported_ggml_types(), ")");
}

// ---------------------------------------------------------------------------------------------
// GgufValue

template <typename T>
GgufValue GgufValue::scalar(T x) {
  GgufValue v;
  v.type = gguf_type_of<T>();
  if constexpr (std::is_same_v<T, bool>) {
    v.bits = x ? 1 : 0;
  } else {
    std::memcpy(&v.bits, &x, sizeof(T));
  }
  return v;
}

GgufValue GgufValue::string(std::string s) {
  GgufValue v;
  v.type = GgufType::kString;
  v.str = std::move(s);
  return v;
}

template <typename T>
GgufValue GgufValue::array(std::span<const T> values) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = gguf_type_of<T>();
  v.count = values.size();
  v.raw.resize(values.size() * sizeof(T));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      v.raw[i] = values[i] ? 1 : 0;
    } else {
      std::memcpy(v.raw.data() + i * sizeof(T), &values[i], sizeof(T));
    }
  }
  return v;
}

GgufValue GgufValue::string_array(std::vector<std::string> values) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kString;
  v.count = values.size();
  v.strings = std::move(values);
  return v;
}

GgufValue GgufValue::array_of_arrays(std::vector<GgufValue> values) {
  for (const GgufValue& e : values) {
    ZEBRA_CHECK(e.type == GgufType::kArray, "GgufValue::array_of_arrays: an element is a ", e.type_name());
  }
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kArray;
  v.count = values.size();
  v.arrays = std::move(values);
  return v;
}

#define ZEBRA_GGUF_INSTANTIATE(T)             \
  template GgufValue GgufValue::scalar<T>(T); \
  template GgufValue GgufValue::array<T>(std::span<const T>);
ZEBRA_GGUF_INSTANTIATE(bool)
ZEBRA_GGUF_INSTANTIATE(std::uint8_t)
ZEBRA_GGUF_INSTANTIATE(std::int8_t)
ZEBRA_GGUF_INSTANTIATE(std::uint16_t)
ZEBRA_GGUF_INSTANTIATE(std::int16_t)
ZEBRA_GGUF_INSTANTIATE(std::uint32_t)
ZEBRA_GGUF_INSTANTIATE(std::int32_t)
ZEBRA_GGUF_INSTANTIATE(std::uint64_t)
ZEBRA_GGUF_INSTANTIATE(std::int64_t)
ZEBRA_GGUF_INSTANTIATE(float)
ZEBRA_GGUF_INSTANTIATE(double)
#undef ZEBRA_GGUF_INSTANTIATE

bool GgufValue::is_integer() const { return integer_type(type); }
bool GgufValue::is_float() const { return type == GgufType::kF32 || type == GgufType::kF64; }
std::optional<std::int64_t> GgufValue::as_int() const { return decode_int(type, bits); }
std::optional<double> GgufValue::as_float() const { return decode_float(type, bits); }
std::optional<bool> GgufValue::as_bool() const {
  if (type != GgufType::kBool) return std::nullopt;
  return bits != 0;
}

std::int64_t GgufValue::int_at(std::uint64_t i) const {
  ZEBRA_CHECK(type == GgufType::kArray && integer_type(elem_type) && i < count, "GgufValue::int_at(", i, ") on a ",
              type_name(), " of ", count, " elements");
  const std::size_t es = scalar_size(elem_type);
  const auto r = decode_int(elem_type, load_bits(raw.data() + i * es, es));
  ZEBRA_CHECK(r.has_value(), "GGUF array element ", i, " does not fit int64");
  return *r;
}

double GgufValue::float_at(std::uint64_t i) const {
  ZEBRA_CHECK(type == GgufType::kArray && (elem_type == GgufType::kF32 || elem_type == GgufType::kF64) && i < count,
              "GgufValue::float_at(", i, ") on a ", type_name(), " of ", count, " elements");
  const std::size_t es = scalar_size(elem_type);
  return *decode_float(elem_type, load_bits(raw.data() + i * es, es));
}

std::string GgufValue::type_name() const {
  if (type != GgufType::kArray) return to_string(type);
  if (elem_type != GgufType::kArray) return str_cat("array[", to_string(elem_type), "]");
  return str_cat("array[", arrays.empty() ? std::string("array") : arrays[0].type_name(), "]");
}

// ---------------------------------------------------------------------------------------------
// Reader

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = MappedFile(path);
  const std::string where = "GGUF file '" + path + "'";
  Cursor c(where, f.file_.data(), f.file_.size());

  // Header.
  const std::uint8_t* magic = c.take(4, "the header (magic)");
  if (std::memcmp(magic, kMagic, 4) != 0) {
    std::string found;
    for (int i = 0; i < 4; ++i)
      found += str_cat(i ? " " : "", "0123456789abcdef"[magic[i] >> 4], "0123456789abcdef"[magic[i] & 15]);
    fail(where, ": bad magic: expected \"GGUF\" (47 47 55 46), found bytes ", found, " (not a GGUF file)");
  }
  f.version_ = c.get<std::uint32_t>("the header (version)");
  if (f.version_ == 1) {
    fail(where, ": GGUF version 1 is not supported (supported: 2, 3); convert the file with a current llama.cpp");
  }
  if (f.version_ != 2 && f.version_ != 3) {
    if ((f.version_ & 0xffffu) == 0 && (f.version_ >> 16) != 0) {
      fail(where, ": GGUF version field ", f.version_, " reads as a byte-swapped ", __builtin_bswap32(f.version_),
           ": big-endian GGUF files are not supported");
    }
    fail(where, ": unsupported GGUF version ", f.version_, " (supported: 2, 3)");
  }
  // Minimum bytes per entry: a tensor info is name length (8) + n_dims (4) + one dim (8) + type (4) +
  // offset (8); a key/value is key length (8) + type (4) + a value of at least 1 byte.
  const std::uint64_t n_tensors = c.count("the header (tensor count)", 0, kGgufMaxTensors);
  const std::uint64_t n_kv = c.count("the header (metadata count)", 13, kGgufMaxKeys);
  if (n_tensors > c.left() / 32) {
    fail(where, ": the header claims ", n_tensors,
         " tensors, but their infos (at least 32 bytes each) cannot fit in "
         "the ",
         c.left(), " bytes left in the file");
  }

  // Metadata.
  std::uint64_t nested = 0;
  f.kv_.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.string(str_cat("metadata entry ", i, " (key)"));
    const std::string what = str_cat("metadata key ", quoted(key));
    if (key.empty()) fail(where, ": metadata entry ", i, " has an empty key");
    if (f.kv_index_.count(key) != 0) fail(where, ": ", what, " appears more than once");
    const GgufType type = value_type(c, what + " (value type)");
    GgufValue v = read_value(c, type, what, 0, nested);
    f.kv_index_.emplace(key, f.kv_.size());
    f.kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::kU32) {
      fail(where, ": metadata key 'general.alignment': expected u32, found ", a->type_name());
    }
    const auto al = static_cast<std::uint32_t>(a->bits);
    if (al == 0 || !std::has_single_bit(al) || al > kGgufMaxAlignment) {
      fail(where, ": metadata key 'general.alignment' = ", al, ": expected a power of two in [1, ", kGgufMaxAlignment,
           "]");
    }
    f.alignment_ = al;
  }

  // Tensor infos.
  f.tensors_.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.string(str_cat("tensor info ", i, " (name)"));
    const std::string what = str_cat("tensor ", quoted(t.name));
    if (t.name.empty()) fail(where, ": tensor info ", i, " has an empty name");
    if (f.tensor_index_.count(t.name) != 0) fail(where, ": ", what, " appears more than once");
    const auto n_dims = c.get<std::uint32_t>(what + " (n_dims)");
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      fail(where, ": ", what, ": n_dims = ", n_dims, ", expected 1..", kGgufMaxDims);
    }
    std::int64_t numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = c.get<std::uint64_t>(str_cat(what, " (ne[", d, "])"));
      if (ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
          __builtin_mul_overflow(numel, static_cast<std::int64_t>(ne), &numel)) {
        fail(where, ": ", what, ": ne[", d, "] = ", ne, " makes the element count overflow int64");
      }
      t.ne.push_back(static_cast<std::int64_t>(ne));
    }
    t.numel = numel;
    t.shape.assign(t.ne.rbegin(), t.ne.rend());
    t.ggml_type = c.get<std::uint32_t>(what + " (type)");
    try {
      t.dtype = ggml_type_to_dtype(t.ggml_type);
    } catch (const Error& e) {
      fail(where, ": ", what, ": ", e.what());
    }
    const std::int64_t block = dtype_block_elements(t.dtype);
    if (t.ne[0] % block != 0) {
      fail(where, ": ", what, ": ne[0] = ", t.ne[0], " (the row length) is not a multiple of ", block,
           ", the block "
           "size of ",
           to_string(t.dtype));
    }
    std::size_t row_bytes = 0;
    try {
      row_bytes = dtype_row_bytes(t.dtype, t.ne[0]);
    } catch (const Error& e) {
      fail(where, ": ", what, ": ", e.what());
    }
    if (__builtin_mul_overflow(row_bytes, static_cast<std::size_t>(t.rows()), &t.nbytes)) {
      fail(where, ": ", what, ": ", t.numel, " elements of ", to_string(t.dtype), " overflow the byte count");
    }
    t.offset = c.get<std::uint64_t>(what + " (offset)");
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  // Data section: at the first multiple of the alignment after the tensor infos.
  const std::size_t header_end = c.pos();
  const std::size_t al = f.alignment_;
  f.data_offset_ = (header_end + al - 1) / al * al;  // header_end <= file size < 2^63: no overflow
  const std::size_t size = f.file_.size();
  if (f.data_offset_ > size) {
    if (!f.tensors_.empty()) {
      fail(where, ": truncated: the data section starts at byte ", f.data_offset_, " (after padding to ", al,
           ") but the file has ", size, " bytes");
    }
    f.data_offset_ = size;  // no tensors: the padding may be missing
  }
  const std::size_t data_size = size - f.data_offset_;
  for (const GgufTensor& t : f.tensors_) {
    const std::string what = str_cat("tensor ", quoted(t.name));
    if (t.offset % al != 0) {
      fail(where, ": ", what, ": offset ", t.offset, " is not a multiple of the alignment ", al);
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail(where, ": ", what, ": bytes [", t.offset, ", +", t.nbytes, ") of the data section (shape ", t.numel,
           " elements of ", to_string(t.dtype), ") extend past its end (", data_size, " bytes): truncated or corrupt");
    }
  }
  std::vector<std::size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return f.tensors_[a].offset != f.tensors_[b].offset ? f.tensors_[a].offset < f.tensors_[b].offset : a < b;
  });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& p = f.tensors_[order[k - 1]];
    const GgufTensor& t = f.tensors_[order[k]];
    if (p.offset + p.nbytes > t.offset && p.nbytes > 0 && t.nbytes > 0) {
      fail(where, ": tensors ", quoted(p.name), " (bytes [", p.offset, ", ", p.offset + p.nbytes, ")) and ",
           quoted(t.name), " (bytes [", t.offset, ", ", t.offset + t.nbytes, ")) of the data section overlap");
    }
  }
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::value(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("GGUF file '", path(), "': metadata key ", quoted(key), " is absent");
  return *v;
}

namespace {

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const char* expected,
                             const GgufValue& v) {
  fail("GGUF file '", path, "': metadata key ", quoted(key), ": expected ", expected, ", found ", v.type_name());
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::kString) wrong_type(path(), key, "string", v);
  return v.str;
}

std::int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = value(key);
  const auto r = v.as_int();
  if (!r) wrong_type(path(), key, "an integer (u8..i64, fitting int64)", v);
  return *r;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = value(key);
  const auto r = v.as_float();
  if (!r) wrong_type(path(), key, "f32 or f64", v);
  return *r;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  const auto r = v.as_bool();
  if (!r) wrong_type(path(), key, "bool", v);
  return *r;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::kArray || v.elem_type != GgufType::kString) wrong_type(path(), key, "array[string]", v);
  return v.strings;
}

std::vector<std::int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::kArray || !integer_type(v.elem_type)) wrong_type(path(), key, "an array of integers", v);
  std::vector<std::int64_t> out(static_cast<std::size_t>(v.count));
  for (std::uint64_t i = 0; i < v.count; ++i) {
    const std::size_t es = scalar_size(v.elem_type);
    const auto r = decode_int(v.elem_type, load_bits(v.raw.data() + i * es, es));
    if (!r) fail("GGUF file '", path(), "': metadata key ", quoted(key), ": element ", i, " does not fit int64");
    out[i] = *r;
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::kArray || (v.elem_type != GgufType::kF32 && v.elem_type != GgufType::kF64)) {
    wrong_type(path(), key, "array[f32] or array[f64]", v);
  }
  std::vector<double> out(static_cast<std::size_t>(v.count));
  for (std::uint64_t i = 0; i < v.count; ++i) out[i] = v.float_at(i);
  return out;
}

std::optional<std::string> GgufFile::find_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}
std::optional<std::int64_t> GgufFile::find_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<double> GgufFile::find_float(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}
std::optional<bool> GgufFile::find_bool(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  if (t == nullptr) fail("GGUF file '", path(), "': no tensor named ", quoted(name));
  return *t;
}

std::span<const std::uint8_t> GgufFile::raw(const GgufTensor& t) const {
  return {file_.data() + data_offset_ + t.offset, t.nbytes};
}

WeightMatrix GgufFile::matrix(const std::string& name) const {
  const GgufTensor& t = tensor(name);
  return WeightMatrix{t.dtype, raw(t).data(), t.rows(), t.cols(), dtype_row_bytes(t.dtype, t.cols())};
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

template <typename T>
void put(std::vector<std::uint8_t>& out, T v) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(&v);
  out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void pad_to(std::vector<std::uint8_t>& out, std::size_t alignment) {
  out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
}

// The value's payload (what follows its type id). Checks that the value is consistent, since a
// malformed GgufValue would otherwise be written as a corrupt file.
void put_value(std::vector<std::uint8_t>& out, const GgufValue& v, const std::string& what) {
  ZEBRA_CHECK(known_type(static_cast<std::uint32_t>(v.type)), what, ": unknown value type");
  if (is_scalar(v.type)) {
    ZEBRA_CHECK(v.type != GgufType::kBool || v.bits <= 1, what, ": bool value ", v.bits);
    const std::size_t n = scalar_size(v.type);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v.bits);
    out.insert(out.end(), b, b + n);
    return;
  }
  if (v.type == GgufType::kString) {
    put_string(out, v.str);
    return;
  }
  put<std::uint32_t>(out, static_cast<std::uint32_t>(v.elem_type));
  put<std::uint64_t>(out, v.count);
  if (is_scalar(v.elem_type)) {
    ZEBRA_CHECK(v.raw.size() == v.count * scalar_size(v.elem_type), what, ": ", v.count, " elements of ",
                to_string(v.elem_type), " need ", v.count * scalar_size(v.elem_type), " bytes, raw holds ",
                v.raw.size());
    out.insert(out.end(), v.raw.begin(), v.raw.end());
  } else if (v.elem_type == GgufType::kString) {
    ZEBRA_CHECK(v.strings.size() == v.count, what, ": count ", v.count, " but ", v.strings.size(), " strings");
    for (const std::string& s : v.strings) put_string(out, s);
  } else {
    ZEBRA_CHECK(v.arrays.size() == v.count, what, ": count ", v.count, " but ", v.arrays.size(), " arrays");
    for (const GgufValue& e : v.arrays) {
      ZEBRA_CHECK(e.type == GgufType::kArray, what, ": an element of an array of arrays is a ", e.type_name());
      put_value(out, e, what);
    }
  }
}

}  // namespace

std::vector<std::uint8_t> gguf_bytes(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                     const std::vector<GgufTensorToWrite>& tensors, std::uint32_t alignment) {
  ZEBRA_CHECK(alignment != 0 && std::has_single_bit(alignment) && alignment <= kGgufMaxAlignment,
              "write_gguf: alignment ", alignment, " is not a power of two in [1, ", kGgufMaxAlignment, "]");
  std::vector<std::uint8_t> out(kMagic, kMagic + 4);
  put<std::uint32_t>(out, 3);
  put<std::uint64_t>(out, tensors.size());
  put<std::uint64_t>(out, metadata.size());

  std::map<std::string, int> keys;
  bool alignment_stated = false;
  for (const auto& [key, v] : metadata) {
    const std::string what = "write_gguf: metadata key " + quoted(key);
    ZEBRA_CHECK(!key.empty(), "write_gguf: empty metadata key");
    ZEBRA_CHECK(keys.emplace(key, 0).second, what, " given twice");
    if (key == "general.alignment") {
      ZEBRA_CHECK(v.type == GgufType::kU32 && v.bits == alignment, what, " must be u32 ", alignment,
                  " (the alignment written), found ", v.type_name(), " ", v.bits);
      alignment_stated = true;
    }
    put_string(out, key);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(v.type));
    put_value(out, v, what);
  }
  ZEBRA_CHECK(alignment == kGgufDefaultAlignment || alignment_stated, "write_gguf: alignment ", alignment,
              " needs the metadata key general.alignment (u32) with that value");

  std::map<std::string, int> names;
  std::uint64_t offset = 0;
  for (const GgufTensorToWrite& t : tensors) {
    const std::string what = "write_gguf: tensor " + quoted(t.name);
    ZEBRA_CHECK(!t.name.empty(), "write_gguf: a tensor has an empty name");
    ZEBRA_CHECK(names.emplace(t.name, 0).second, what, " given twice");
    ZEBRA_CHECK(!t.shape.empty() && t.shape.size() <= kGgufMaxDims, what, ": ", t.shape.size(),
                " dimensions, expected 1..", kGgufMaxDims);
    std::size_t rows = 1;
    for (std::size_t d = 0; d + 1 < t.shape.size(); ++d) {
      ZEBRA_CHECK(t.shape[d] >= 0 && !__builtin_mul_overflow(rows, static_cast<std::size_t>(t.shape[d]), &rows), what,
                  ": bad dimension ", t.shape[d]);
    }
    ZEBRA_CHECK(t.shape.back() >= 0, what, ": bad dimension ", t.shape.back());
    const std::size_t expected = dtype_row_bytes(t.dtype, t.shape.back()) * rows;
    ZEBRA_CHECK(t.bytes.size() == expected, what, ": ", t.bytes.size(), " bytes given, the shape needs ", expected);
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it)
      put<std::uint64_t>(out, static_cast<std::uint64_t>(*it));
    put<std::uint32_t>(out, dtype_to_ggml_type(t.dtype));
    put<std::uint64_t>(out, offset);
    offset = (offset + expected + alignment - 1) / alignment * alignment;
  }
  pad_to(out, alignment);
  for (const GgufTensorToWrite& t : tensors) {
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
    pad_to(out, alignment);
  }
  return out;
}

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors, std::uint32_t alignment) {
  const std::vector<std::uint8_t> bytes = gguf_bytes(metadata, tensors, alignment);
  write_file_atomic(path, bytes);
}

}  // namespace zebra
