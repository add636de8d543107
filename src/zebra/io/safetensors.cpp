#include "zebra/io/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using json = nlohmann::json;

std::string shape_string(const std::vector<std::int64_t>& shape) {
  // A shape read from a file may have any number of dimensions: show at most 8 in an error.
  constexpr std::size_t kShown = 8;
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size() && i < kShown; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() > kShown) s += str_cat(", ... (", shape.size(), " dimensions)");
  return s + "]";
}

// ---------------------------------------------------------------------------------------------
// Reader

namespace {

// Dtypes of the safetensors specification that this reader does not convert: known (so that a
// checkpoint holding, say, an integer buffer still opens and validates), but refused by read().
struct OtherDtype {
  const char* name;
  std::size_t size;
};
constexpr OtherDtype kOtherDtypes[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
                                       {"U16", 2},  {"I32", 4}, {"U32", 4}, {"I64", 8},     {"U64", 8}};

std::uint64_t json_non_negative(const json& v, const std::string& where) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    std::int64_t i = v.get<std::int64_t>();
    if (i < 0) fail(where, ": expected a non-negative integer, found ", i);
    return static_cast<std::uint64_t>(i);
  }
  fail(where, ": expected a non-negative integer, found ", shown_json(v));
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile(path);
  const std::size_t size = f.file_.size();
  const std::string where = "safetensors file '" + path + "'";
  if (size < 8) fail(where, ": ", size, " bytes, too short for the 8-byte header length");
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, f.file_.data(), 8);
  if (header_len > kMaxSafetensorsHeader) {
    fail(where, ": header length ", header_len, " bytes exceeds the limit of ", kMaxSafetensorsHeader,
         " bytes (not a safetensors file, or corrupt)");
  }
  if (header_len > size - 8) {
    fail(where, ": header length ", header_len, " bytes exceeds the file (", size, " bytes, of which ", size - 8,
         " follow the length field): truncated or corrupt");
  }
  f.data_start_ = 8 + static_cast<std::size_t>(header_len);
  const std::size_t data_size = size - f.data_start_;

  // Duplicate top-level keys would silently keep the last one in nlohmann::json; catch them with the
  // parser callback (depth 1 = keys of the root object).
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  const char* hbegin = reinterpret_cast<const char*>(f.file_.data() + 8);
  check_json_depth(std::string_view(hbegin, header_len), where + ": header");
  json header;
  try {
    header = json::parse(hbegin, hbegin + header_len, on_event);
  } catch (const json::exception& e) {
    fail(where, ": header is not valid JSON: ", e.what());
  }
  if (!duplicate.empty()) fail(where, ": tensor name '", duplicate, "' appears more than once in the header");
  if (!header.is_object()) fail(where, ": header: expected a JSON object, found ", header.type_name());

  struct Range {
    std::size_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object()) fail(where, ": __metadata__: expected an object of strings, found ", v.type_name());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail(where, ": __metadata__ entry '", m.key(), "': expected a string, found ", shown_json(m.value()));
        }
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = where + ", tensor '" + bounded(name) + "'";
    if (name.empty()) fail(where, ": a tensor has an empty name");
    if (!v.is_object()) fail(tw, ": expected an object {dtype, shape, data_offsets}, found ", v.type_name());
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(tw, ": missing or non-string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(tw, ": missing or non-array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) {
      fail(tw, ": 'data_offsets' must be an array [begin, end]");
    }
    TensorEntry e;
    e.name = name;
    const std::string dname = v["dtype"].get<std::string>();
    e.dtype_name = dname;
    std::size_t esize = 0;
    if (dname == "F32" || dname == "F16" || dname == "BF16" || dname == "F64") {
      e.dtype = parse_dtype(dname);
      esize = dtype_size(e.dtype);
    } else {
      for (const OtherDtype& o : kOtherDtypes) {
        if (dname == o.name) esize = o.size;
      }
      if (esize == 0) {
        fail(tw, ": unknown dtype '", bounded(dname), "' (known: F32, F16, BF16, F64, BOOL, U8, I8, F8_E4M3, F8_E5M2, ",
             "I16, U16, I32, U32, I64, U64)");
      }
      e.convertible = false;
    }
    // numel and byte size, refusing overflow: every product is bounded by the data section size.
    std::uint64_t numel = 1;
    const json& shape = v["shape"];
    for (std::size_t i = 0; i < shape.size(); ++i) {
      std::uint64_t d = json_non_negative(shape[i], tw + ": shape[" + std::to_string(i) + "]");
      if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(tw, ": shape[", i, "] = ", d, " is too large");
      }
      e.shape.push_back(static_cast<std::int64_t>(d));
      if (__builtin_mul_overflow(numel, d, &numel)) fail(tw, ": shape ", shown_json(shape), " overflows 64 bits");
    }
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(esize), &nbytes)) {
      fail(tw, ": shape ", shown_json(shape), " overflows 64 bits in bytes");
    }
    const std::uint64_t begin = json_non_negative(v["data_offsets"][0], tw + ": data_offsets[0]");
    const std::uint64_t end = json_non_negative(v["data_offsets"][1], tw + ": data_offsets[1]");
    if (begin > end) fail(tw, ": data_offsets [", begin, ", ", end, "] has begin after end");
    if (end > data_size) {
      fail(tw, ": data_offsets [", begin, ", ", end, "] extend past the data section (", data_size,
           " bytes): truncated or corrupt");
    }
    if (end - begin != nbytes) {
      fail(tw, ": data_offsets [", begin, ", ", end, "] span ", end - begin, " bytes, expected ", nbytes, " (shape ",
           shape_string(e.shape), " x ", esize, " bytes of ", dname, ")");
    }
    e.numel = static_cast<std::size_t>(numel);
    e.begin = static_cast<std::size_t>(begin);
    e.end = static_cast<std::size_t>(end);
    auto [pos, inserted] = f.tensors_.emplace(name, std::move(e));
    (void)inserted;  // duplicates were refused above
    ranges.push_back({pos->second.begin, pos->second.end, &pos->first});
  }

  // The tensors must tile the data section: no overlap, no hole, nothing after the last one.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::size_t covered = 0;
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < covered) {
      fail(where, ": tensors '", *prev->name, "' (bytes [", prev->begin, ", ", prev->end, ")) and '", *r.name,
           "' (bytes [", r.begin, ", ", r.end, ")) overlap");
    }
    if (r.begin > covered) {
      fail(where, ": bytes [", covered, ", ", r.begin, ") of the data section belong to no tensor (before '", *r.name,
           "')");
    }
    covered = r.end;
    prev = &r;
  }
  if (covered != data_size) {
    fail(where, ": the data section holds ", data_size, " bytes but the tensors end at byte ", covered,
         " (trailing or missing data)");
  }
  return f;
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("safetensors file '", path(), "': no tensor named '", name, "'");
  return it->second;
}

void SafetensorsFile::drop(const std::string& name) const {
  const TensorEntry& e = entry(name);
  file_.drop_pages(data_start_ + e.begin, e.end - e.begin);
}

std::span<const std::uint8_t> SafetensorsFile::raw(const std::string& name) const {
  const TensorEntry& e = entry(name);
  return {file_.data() + data_start_ + e.begin, e.end - e.begin};
}

template <typename T>
void SafetensorsFile::read(const std::string& name, T* out, std::size_t numel_expected) const {
  const TensorEntry& e = entry(name);
  if (!e.convertible) {
    fail("safetensors file '", path(), "', tensor '", name, "': dtype ", e.dtype_name,
         " cannot be read as floating point (supported: F32, F16, BF16, F64)");
  }
  if (e.numel != numel_expected) {
    fail("safetensors file '", path(), "', tensor '", name, "': expected ", numel_expected, " elements, found ",
         e.numel, " (shape ", shape_string(e.shape), ")");
  }
  if (e.numel == 0) return;
  convert_floating(e.dtype, file_.data() + data_start_ + e.begin, out, e.numel);
}

template <typename T>
void SafetensorsFile::read(const std::string& name, T* out, const std::vector<std::int64_t>& expected_shape) const {
  const TensorEntry& e = entry(name);
  if (e.shape != expected_shape) {
    fail("safetensors file '", path(), "', tensor '", name, "': expected shape ", shape_string(expected_shape),
         ", found ", shape_string(e.shape));
  }
  read(name, out, e.numel);
}

template void SafetensorsFile::read<float>(const std::string&, float*, std::size_t) const;
template void SafetensorsFile::read<double>(const std::string&, double*, std::size_t) const;
template void SafetensorsFile::read<float>(const std::string&, float*, const std::vector<std::int64_t>&) const;
template void SafetensorsFile::read<double>(const std::string&, double*, const std::vector<std::int64_t>&) const;

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

// A file written under a temporary name and renamed into place by commit(); removed if never
// committed. Streams, so a large model never needs a second full-size copy in memory.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path) : path_(std::move(path)) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create '", tmp_, "': ", std::strerror(errno));
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot write '", tmp_, "': ", std::strerror(errno));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void commit() {
    if (::fsync(fd_) != 0) fail("cannot flush '", tmp_, "': ", std::strerror(errno));
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) fail("cannot close '", tmp_, "': ", std::strerror(errno));
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      fail("cannot rename '", tmp_, "' to '", path_, "': ", std::strerror(errno));
    }
    committed_ = true;
    std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: makes the rename durable
      ::close(dfd);
    }
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

template <typename S>
void append_converted(std::vector<std::uint8_t>& buf, const S* src, std::size_t n, DType dtype) {
  const std::size_t es = dtype_size(dtype);
  buf.resize(n * es);
  std::uint8_t* dst = buf.data();
  for (std::size_t i = 0; i < n; ++i) {
    const S x = src[i];
    switch (dtype) {
      case DType::kF32: {
        float v = static_cast<float>(x);  // double -> float rounds to nearest even
        std::memcpy(dst + 4 * i, &v, 4);
        break;
      }
      case DType::kF64: {
        double v = static_cast<double>(x);
        std::memcpy(dst + 8 * i, &v, 8);
        break;
      }
      case DType::kBF16: {
        std::uint16_t h =
            std::is_same_v<S, double> ? double_to_bf16(static_cast<double>(x)) : float_to_bf16(static_cast<float>(x));
        std::memcpy(dst + 2 * i, &h, 2);
        break;
      }
      case DType::kF16: {
        std::uint16_t h =
            std::is_same_v<S, double> ? double_to_f16(static_cast<double>(x)) : float_to_f16(static_cast<float>(x));
        std::memcpy(dst + 2 * i, &h, 2);
        break;
      }
      default: fail("write_safetensors: dtype ", to_string(dtype), " is not a safetensors floating type");
    }
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata, DType dtype) {
  // Header: __metadata__ first, then the tensors in the order given (ordered_json keeps insertion order).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::set<std::string> names;
  std::vector<std::size_t> numels;
  std::uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    const std::string tw = "write_safetensors '" + path + "', tensor '" + t.name + "'";
    if (t.name.empty() || t.name == "__metadata__")
      fail("write_safetensors '", path, "': invalid tensor name '", t.name, "'");
    if (!names.insert(t.name).second) fail(tw, ": name given twice");
    if ((t.f32 == nullptr) == (t.f64 == nullptr)) fail(tw, ": exactly one of f32 / f64 data must be given");
    std::uint64_t numel = 1;
    for (std::int64_t d : t.shape) {
      if (d < 0) fail(tw, ": negative dimension in shape ", shape_string(t.shape));
      if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel)) fail(tw, ": shape overflows");
    }
    const DType dt = t.dtype.value_or(dtype);
    if (dtype_is_quantized(dt)) {
      fail(tw, ": dtype ", to_string(dt), " cannot be stored in safetensors (F32, F16, BF16, F64)");
    }
    const std::uint64_t nbytes = numel * dtype_size(dt);
    header[t.name] = {{"dtype", to_string(dt)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    numels.push_back(static_cast<std::size_t>(numel));
  }
  std::string text = header.dump();
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const std::uint64_t header_len = text.size();

  AtomicWriter out(path);
  out.write(&header_len, 8);
  out.write(text.data(), text.size());
  std::vector<std::uint8_t> buf;
  constexpr std::size_t kChunk = std::size_t{1} << 16;  // elements converted per write
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& t = tensors[i];
    const DType dt = t.dtype.value_or(dtype);
    for (std::size_t done = 0; done < numels[i]; done += kChunk) {
      const std::size_t n = std::min(kChunk, numels[i] - done);
      if (t.f32 != nullptr) {
        append_converted(buf, t.f32 + done, n, dt);
      } else {
        append_converted(buf, t.f64 + done, n, dt);
      }
      out.write(buf.data(), buf.size());
    }
  }
  out.commit();
}

}  // namespace zebra
