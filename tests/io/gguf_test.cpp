// GGUF reader and writer: a round trip of every value type, and hostile files in the manner of
// llama.cpp's test-gguf: bad magic, each version, truncation at every byte, lengths past the end, huge
// counts, misaligned and overlapping data, absurd dimension counts, duplicate names, unknown types.
#include "zebra/io/gguf.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "io/io_test_util.hpp"
#include "zebra/ops/quant/quant.hpp"

namespace zebra {
namespace {

using test::expect_error;
using test::TempDir;
using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// --- a valid file with every value type ---------------------------------------------------------

struct Sample {
  Metadata metadata;
  std::vector<float> a;          // F32 [3, 5]
  std::vector<std::uint8_t> q;   // Q8_0 [2, 64]
  std::vector<std::uint16_t> h;  // F16 [7]
  std::vector<GgufTensorToWrite> tensors;
};

Sample make_sample() {
  Sample s;
  const std::int32_t ints[] = {-1, 0, 7};
  const float floats[] = {0.5f, -2.0f};
  const bool bools[] = {true, false, true};
  s.metadata = {
      {"general.architecture", GgufValue::string("test")},
      {"u8", GgufValue::scalar<std::uint8_t>(200)},
      {"i8", GgufValue::scalar<std::int8_t>(-100)},
      {"u16", GgufValue::scalar<std::uint16_t>(60000)},
      {"i16", GgufValue::scalar<std::int16_t>(-30000)},
      {"u32", GgufValue::scalar<std::uint32_t>(4000000000u)},
      {"i32", GgufValue::scalar<std::int32_t>(-2000000000)},
      {"u64", GgufValue::scalar<std::uint64_t>(std::uint64_t{1} << 40)},
      {"i64", GgufValue::scalar<std::int64_t>(-(std::int64_t{1} << 50))},
      {"f32", GgufValue::scalar(0.25f)},
      {"f64", GgufValue::scalar(-1.0 / 3.0)},
      {"bool", GgufValue::scalar(true)},
      {"empty string", GgufValue::string("")},
      {"ints", GgufValue::array<std::int32_t>(ints)},
      {"floats", GgufValue::array<float>(floats)},
      {"bools", GgufValue::array<bool>(bools)},
      {"strings", GgufValue::string_array({"alpha", "", "<|im_start|>"})},
      {"nested", GgufValue::array_of_arrays({GgufValue::array<std::int32_t>(ints),
                                             GgufValue::array<std::int32_t>(std::span<const std::int32_t>())})},
  };
  s.a.resize(15);
  for (std::size_t i = 0; i < s.a.size(); ++i) s.a[i] = static_cast<float>(i) * 0.5f - 3.0f;
  std::vector<float> w(128);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 37) % 17) - 8.0f;
  s.q.resize(dtype_row_bytes(DType::kQ8_0, 64) * 2);
  quant::quantize_row(DType::kQ8_0, w.data(), s.q.data(), 128);
  for (int i = 0; i < 7; ++i) s.h.push_back(float_to_f16(static_cast<float>(i) - 2.5f));
  s.tensors = {
      {"a", DType::kF32, {3, 5}, {reinterpret_cast<const std::uint8_t*>(s.a.data()), s.a.size() * 4}},
      {"q", DType::kQ8_0, {2, 64}, s.q},
      {"h", DType::kF16, {7}, {reinterpret_cast<const std::uint8_t*>(s.h.data()), s.h.size() * 2}},
  };
  return s;
}

std::vector<std::uint8_t> sample_bytes() {
  const Sample s = make_sample();
  return gguf_bytes(s.metadata, s.tensors);
}

// Writes bytes to a file and opens it.
GgufFile open_bytes(const TempDir& dir, const std::vector<std::uint8_t>& bytes, const std::string& name = "t.gguf") {
  test::write_bytes(dir.file(name), bytes);
  return GgufFile::open(dir.file(name));
}

TEST(Gguf, RoundTripEveryValueType) {
  TempDir dir;
  const Sample s = make_sample();
  write_gguf(dir.file("s.gguf"), s.metadata, s.tensors);
  const GgufFile f = GgufFile::open(dir.file("s.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  ASSERT_EQ(f.metadata().size(), s.metadata.size());
  for (std::size_t i = 0; i < s.metadata.size(); ++i) EXPECT_EQ(f.metadata()[i].first, s.metadata[i].first);
  EXPECT_EQ(f.get_string("general.architecture"), "test");
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_int("u64"), std::int64_t{1} << 40);
  EXPECT_EQ(f.get_int("i64"), -(std::int64_t{1} << 50));
  EXPECT_EQ(f.get_float("f32"), 0.25);
  EXPECT_EQ(f.get_float("f64"), -1.0 / 3.0);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("empty string"), "");
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<std::int64_t>{-1, 0, 7}));
  EXPECT_EQ(f.get_float_array("floats"), (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(f.value("bools").type_name(), "array[bool]");
  EXPECT_EQ(f.value("bools").raw, (std::vector<std::uint8_t>{1, 0, 1}));
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"alpha", "", "<|im_start|>"}));
  const GgufValue& nested = f.value("nested");
  EXPECT_EQ(nested.type_name(), "array[array[i32]]");
  ASSERT_EQ(nested.arrays.size(), 2u);
  EXPECT_EQ(nested.arrays[0].int_at(2), 7);
  EXPECT_EQ(nested.arrays[1].count, 0u);
  EXPECT_FALSE(f.find_int("absent").has_value());

  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensor& a = f.tensor("a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.ne, (std::vector<std::int64_t>{5, 3}));
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3, 5}));
  EXPECT_EQ(a.rows(), 3);
  EXPECT_EQ(a.cols(), 5);
  const GgufTensor& q = f.tensor("q");
  EXPECT_EQ(q.ggml_type, 8u);
  EXPECT_EQ(q.nbytes, 2u * 68u);
  for (const GgufTensor& t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  for (const GgufTensorToWrite& t : s.tensors) {
    const auto raw = f.raw(t.name);
    EXPECT_TRUE(std::equal(raw.begin(), raw.end(), t.bytes.begin(), t.bytes.end())) << t.name;
  }
  const WeightMatrix m = f.matrix("q");
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.cols, 64);
  EXPECT_EQ(m.row_bytes, 68u);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(Gguf, LargerAlignmentAndVersion2) {
  TempDir dir;
  Sample s = make_sample();
  s.metadata.emplace_back("general.alignment", GgufValue::scalar<std::uint32_t>(256));
  std::vector<std::uint8_t> bytes = gguf_bytes(s.metadata, s.tensors, 256);
  {
    const GgufFile f = open_bytes(dir, bytes);
    EXPECT_EQ(f.alignment(), 256u);
    EXPECT_EQ(f.data_offset() % 256, 0u);
    for (const GgufTensor& t : f.tensors()) EXPECT_EQ(t.offset % 256, 0u);
  }
  test::put_pod<std::uint32_t>(bytes, 4, 2);  // version 2 has the same little-endian layout
  EXPECT_EQ(open_bytes(dir, bytes, "v2.gguf").version(), 2u);
  // The writer insists that the stated alignment is the one used.
  expect_error([&] { gguf_bytes(s.metadata, s.tensors, 64); }, {"general.alignment"});
  expect_error([&] { gguf_bytes(make_sample().metadata, s.tensors, 64); }, {"general.alignment"});
  expect_error([&] { gguf_bytes({}, {}, 48); }, {"power of two"});
}

TEST(Gguf, VocabOnlyFileWithoutTensors) {
  TempDir dir;
  std::vector<std::uint8_t> bytes = gguf_bytes({{"k", GgufValue::string("v")}}, {});
  const GgufFile f = open_bytes(dir, bytes);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_string("k"), "v");
}

TEST(Gguf, WriterRefusesInconsistentInput) {
  const Sample s = make_sample();
  std::vector<GgufTensorToWrite> t = s.tensors;
  t[1].shape = {2, 63};
  expect_error([&] { gguf_bytes({}, t); }, {"multiple of 32"});
  t = s.tensors;
  t[0].shape = {3, 4};
  expect_error([&] { gguf_bytes({}, t); }, {"tensor 'a'", "60 bytes given", "needs 48"});
  t = s.tensors;
  t[2].name = "a";
  expect_error([&] { gguf_bytes({}, t); }, {"'a'", "twice"});
  expect_error(
      [&] {
        gguf_bytes({{"k", GgufValue::scalar(1.0f)}, {"k", GgufValue::scalar(2.0f)}}, {});
      },
      {"'k'", "twice"});
  t = s.tensors;
  t[0].shape = {1, 1, 1, 3, 5};
  expect_error([&] { gguf_bytes({}, t); }, {"5 dimensions"});
}

// --- hostile files ---------------------------------------------------------------------------

// Every prefix of a valid file that cuts into the header or a tensor's bytes must be refused with a
// zebra::Error (never a crash or an over-read: run under ASan); prefixes that cut only the padding
// after the last tensor still hold every byte and must open.
TEST(GgufHostile, TruncationAtEveryByte) {
  TempDir dir;
  const std::vector<std::uint8_t> full = sample_bytes();
  const GgufFile whole = open_bytes(dir, full, "full.gguf");
  std::size_t data_end = 0;
  for (const GgufTensor& t : whole.tensors()) data_end = std::max(data_end, whole.data_offset() + t.offset + t.nbytes);
  ASSERT_LT(data_end, full.size()) << "the sample should end with padding";
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::vector<std::uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    test::write_bytes(dir.file("p.gguf"), prefix);
    if (n < data_end) {
      try {
        GgufFile::open(dir.file("p.gguf"));
        ADD_FAILURE() << "a prefix of " << n << " bytes (of " << full.size() << ") was accepted";
      } catch (const Error& e) {
        EXPECT_LT(std::strlen(e.what()), 400u) << e.what();
        EXPECT_NE(std::string(e.what()).find("p.gguf"), std::string::npos) << e.what();
      }
    } else {
      EXPECT_NO_THROW(GgufFile::open(dir.file("p.gguf"))) << n;
    }
  }
}

TEST(GgufHostile, BadMagicAndVersions) {
  TempDir dir;
  std::vector<std::uint8_t> b = sample_bytes();
  b[0] = 'X';
  expect_error([&] { open_bytes(dir, b); }, {"bad magic", "58 47 55 46", "not a GGUF file"});
  for (std::uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    b = sample_bytes();
    test::put_pod<std::uint32_t>(b, 4, v);
    if (v == 1) {
      expect_error([&] { open_bytes(dir, b); }, {"version 1 is not supported", "2, 3"});
    } else if (v == 0x03000000u) {
      expect_error([&] { open_bytes(dir, b); }, {"big-endian"});
    } else {
      expect_error([&] { open_bytes(dir, b); }, {"unsupported GGUF version " + std::to_string(v), "2, 3"});
    }
  }
  expect_error([&] { open_bytes(dir, {}); }, {"truncated", "magic"});
}

// Hand-assembled headers for targeted corruption.
struct Raw {
  std::vector<std::uint8_t> b;
  template <typename T>
  Raw& put(T v) {
    test::append_pod(b, v);
    return *this;
  }
  Raw& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  // A tensor info with the given ne (ggml order).
  Raw& tensor(const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
    for (std::uint64_t d : ne) put<std::uint64_t>(d);
    return put<std::uint32_t>(type).put<std::uint64_t>(offset);
  }
  Raw& pad(std::size_t a = 32) {
    b.resize((b.size() + a - 1) / a * a, 0);
    return *this;
  }
  Raw& zeros(std::size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

Raw header(std::uint64_t n_tensors, std::uint64_t n_kv) {
  Raw r;
  r.b = {'G', 'G', 'U', 'F'};
  return r.put<std::uint32_t>(3).put<std::uint64_t>(n_tensors).put<std::uint64_t>(n_kv);
}

TEST(GgufHostile, LengthsPastTheEnd) {
  TempDir dir;
  // A key length of 2^40: above the string cap, refused before any allocation.
  expect_error([&] { open_bytes(dir, header(0, 1).put<std::uint64_t>(std::uint64_t{1} << 40).zeros(32).b); },
               {"metadata entry 0", "string length 1099511627776", "limit"});
  // Just past the end of the file.
  expect_error([&] { open_bytes(dir, header(0, 1).put<std::uint64_t>(100).zeros(10).b); },
               {"truncated", "metadata entry 0 (key)"});
  // A string value running past the end.
  expect_error([&] { open_bytes(dir, header(0, 1).str("k").put<std::uint32_t>(8).put<std::uint64_t>(50).zeros(8).b); },
               {"metadata key 'k'", "truncated"});
  // A tensor whose bytes run past the end of the data section.
  expect_error([&] { open_bytes(dir, header(1, 0).tensor("t", {8}, 0, 0).pad().zeros(16).b); },
               {"tensor 't'", "extend past", "16 bytes"});
  expect_error([&] { open_bytes(dir, header(1, 0).tensor("t", {8}, 0, std::uint64_t{1} << 62).pad().zeros(32).b); },
               {"tensor 't'", "extend past"});
  // Tensors present, but the file ends before the data section begins.
  Raw r = header(1, 0).tensor("t", {0}, 0, 0);
  expect_error([&] { open_bytes(dir, r.b); }, {"data section starts"});
}

TEST(GgufHostile, HugeCounts) {
  TempDir dir;
  expect_error([&] { open_bytes(dir, header(std::uint64_t{1} << 62, 0).b); }, {"tensor count", "limit"});
  expect_error([&] { open_bytes(dir, header(0, std::uint64_t{1} << 62).b); }, {"metadata count", "limit"});
  expect_error([&] { open_bytes(dir, header(1000, 0).zeros(64).b); }, {"1000 tensors", "cannot fit"});
  expect_error([&] { open_bytes(dir, header(0, 1000).zeros(64).b); }, {"metadata count", "cannot fit"});
  // Array counts: of scalars, of strings, of arrays.
  for (std::uint32_t elem : {0u, 12u, 8u, 9u}) {
    const Raw r = header(0, 1).str("arr").put<std::uint32_t>(9).put<std::uint32_t>(elem).put<std::uint64_t>(
        std::uint64_t{1} << 61);
    expect_error([&] { open_bytes(dir, r.b); }, {"metadata key 'arr'", "array count"});
  }
}

TEST(GgufHostile, MisalignedAndOverlappingData) {
  TempDir dir;
  expect_error([&] { open_bytes(dir, header(1, 0).tensor("t", {4}, 0, 4).pad().zeros(64).b); },
               {"tensor 't'", "offset 4", "alignment 32"});
  expect_error([&] { open_bytes(dir, header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96).b); },
               {"'a'", "'b'", "overlap"});
  // Two tensors may share no byte even when listed out of order.
  expect_error([&] { open_bytes(dir, header(2, 0).tensor("a", {8}, 0, 32).tensor("b", {16}, 0, 0).pad().zeros(96).b); },
               {"overlap"});
  EXPECT_NO_THROW(open_bytes(dir, header(2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).pad().zeros(64).b));
  // general.alignment: its type and value are checked.
  expect_error(
      [&] { open_bytes(dir, header(0, 1).str("general.alignment").put<std::uint32_t>(10).put<std::uint64_t>(64).b); },
      {"general.alignment", "expected u32", "u64"});
  for (std::uint32_t a : {0u, 3u, 1u << 30}) {
    expect_error(
        [&] { open_bytes(dir, header(0, 1).str("general.alignment").put<std::uint32_t>(4).put<std::uint32_t>(a).b); },
        {"general.alignment", "power of two"});
  }
}

TEST(GgufHostile, AbsurdDimensions) {
  TempDir dir;
  for (std::uint32_t n_dims : {0u, 5u, 1000000u}) {
    Raw r = header(1, 0).str("t").put<std::uint32_t>(n_dims).zeros(64);
    expect_error([&] { open_bytes(dir, r.b); }, {"tensor 't'", "n_dims = " + std::to_string(n_dims), "1..4"});
  }
  expect_error(
      [&] {
        open_bytes(dir, header(1, 0).tensor("t", {std::uint64_t{1} << 62, 8}, 0, 0).pad().b);
      },
      {"tensor 't'", "overflow"});
  expect_error(
      [&] {
        open_bytes(dir, header(1, 0).tensor("t", {std::uint64_t{1} << 63, 1}, 0, 0).pad().b);
      },
      {"tensor 't'", "overflow"});
  // Bytes overflow although the element count fits.
  expect_error(
      [&] {
        open_bytes(dir, header(1, 0).tensor("t", {std::uint64_t{1} << 62, 1}, 0, 0).pad().b);
      },
      {"tensor 't'", "overflow"});
  expect_error(
      [&] {
        open_bytes(dir, header(1, 0).tensor("t", {33, 2}, 8, 0).pad().zeros(256).b);
      },
      {"tensor 't'", "ne[0] = 33", "multiple of 32", "Q8_0"});
  expect_error([&] { open_bytes(dir, header(1, 0).tensor("t", {128}, 12, 0).pad().zeros(256).b); },
               {"multiple of 256", "Q4_K"});
}

TEST(GgufHostile, DuplicateNames) {
  TempDir dir;
  expect_error(
      [&] {
        open_bytes(dir, header(0, 2)
                            .str("k")
                            .put<std::uint32_t>(0)
                            .put<std::uint8_t>(1)
                            .str("k")
                            .put<std::uint32_t>(0)
                            .put<std::uint8_t>(2)
                            .b);
      },
      {"metadata key 'k'", "more than once"});
  expect_error([&] { open_bytes(dir, header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64).b); },
               {"tensor 't'", "more than once"});
  // A long duplicated name is shown cut, not whole.
  const std::string long_name(10000, 'n');
  try {
    open_bytes(dir, header(2, 0).tensor(long_name, {8}, 0, 0).tensor(long_name, {8}, 0, 32).pad().zeros(64).b);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_LT(std::strlen(e.what()), 400u);
    EXPECT_NE(std::string(e.what()).find("(10000 bytes)"), std::string::npos) << e.what();
  }
  expect_error([&] { open_bytes(dir, header(0, 1).str("").put<std::uint32_t>(0).put<std::uint8_t>(1).b); },
               {"empty key"});
}

TEST(GgufHostile, UnknownTypes) {
  TempDir dir;
  expect_error([&] { open_bytes(dir, header(1, 0).tensor("t", {32}, 6, 0).pad().zeros(64).b); },
               {"tensor 't'", "ggml type id 6", "F32=0", "Q4_1=3", "Q6_K=14", "BF16=30"});
  expect_error([&] { open_bytes(dir, header(0, 1).str("k").put<std::uint32_t>(13).zeros(8).b); },
               {"metadata key 'k'", "unknown value type id 13"});
  expect_error(
      [&] {
        open_bytes(dir, header(0, 1).str("k").put<std::uint32_t>(9).put<std::uint32_t>(77).put<std::uint64_t>(0).b);
      },
      {"array element type", "unknown value type id 77"});
  expect_error([&] { open_bytes(dir, header(0, 1).str("k").put<std::uint32_t>(7).put<std::uint8_t>(2).b); },
               {"metadata key 'k'", "bool value 2"});
}

TEST(GgufHostile, NestingDepthIsCapped) {
  TempDir dir;
  Raw r = header(0, 1).str("deep").put<std::uint32_t>(9);
  for (int i = 0; i < 100; ++i) r.put<std::uint32_t>(9).put<std::uint64_t>(1);
  r.put<std::uint32_t>(0).put<std::uint64_t>(0);
  expect_error([&] { open_bytes(dir, r.b); }, {"metadata key 'deep'", "nested deeper than 8"});
}

TEST(Gguf, TypedGettersNameKeyAndTypes) {
  TempDir dir;
  const GgufFile f = open_bytes(dir, sample_bytes());
  expect_error([&] { f.get_int("general.architecture"); },
               {"t.gguf", "'general.architecture'", "expected an integer", "found string"});
  expect_error([&] { f.get_string("u32"); }, {"'u32'", "expected string", "found u32"});
  expect_error([&] { f.get_float("i8"); }, {"'i8'", "expected f32 or f64", "found i8"});
  expect_error([&] { f.get_bool("u8"); }, {"'u8'", "expected bool"});
  expect_error([&] { f.get_string_array("ints"); }, {"'ints'", "expected array[string]", "found array[i32]"});
  expect_error([&] { f.get_float_array("ints"); }, {"'ints'", "found array[i32]"});
  expect_error([&] { f.get_int_array("strings"); }, {"'strings'", "found array[string]"});
  expect_error([&] { f.get_string("missing.key"); }, {"'missing.key'", "absent"});
  expect_error([&] { f.find_int("general.architecture"); }, {"expected an integer"});
  expect_error([&] { f.tensor("nope"); }, {"no tensor named 'nope'"});
}

TEST(Gguf, GgmlTypeIds) {
  EXPECT_EQ(dtype_to_ggml_type(DType::kQ4_1), 3u);
  EXPECT_EQ(ggml_type_to_dtype(30), DType::kBF16);
  EXPECT_EQ(ggml_type_to_dtype(13), DType::kQ5_K);
  expect_error([] { dtype_to_ggml_type(DType::kF64); }, {"F64", "no ggml type"});
  expect_error([] { ggml_type_to_dtype(7); }, {"id 7"});
}

}  // namespace
}  // namespace zebra
