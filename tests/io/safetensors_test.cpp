#include "zebra/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/io_test_util.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::expect_error;
using test::TempDir;

// Values spread over many binades, with both signs, plus exact small integers.
std::vector<float> test_values(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    double mag = std::ldexp(1.0 + rng.uniform(), static_cast<int>(rng.below(40)) - 20);
    v[i] = static_cast<float>(rng.uniform() < 0.5 ? -mag : mag);
  }
  v[0] = 0.0f;
  v[1] = 1.0f;
  v[2] = -3.0f;
  return v;
}

TEST(Safetensors, RoundTripF32IsExact) {
  TempDir dir;
  auto a = test_values(3 * 5, 1);
  auto b = test_values(7, 2);
  std::vector<double> c = {1.0 / 3.0, -2.5, 1e-30};
  float scalar = 42.0f;
  write_safetensors(dir.file("t.safetensors"),
                    {{"a", {3, 5}, a.data(), nullptr, {}},
                     {"b", {7}, b.data(), nullptr, {}},
                     {"c", {3}, nullptr, c.data(), {}},
                     {"s", {}, &scalar, nullptr, {}},
                     {"empty", {0, 4}, a.data(), nullptr, {}},
                     {"c64", {3}, nullptr, c.data(), DType::kF64}},
                    {{"format", "pt"}, {"note", "hello"}});
  auto f = SafetensorsFile::open(dir.file("t.safetensors"));
  ASSERT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hello");
  EXPECT_EQ(f.entry("a").shape, (std::vector<std::int64_t>{3, 5}));
  EXPECT_EQ(f.entry("a").dtype, DType::kF32);
  EXPECT_EQ(f.entry("c64").dtype, DType::kF64);
  std::vector<float> ra(15), rb(7), rs(1);
  f.read("a", ra.data(), std::vector<std::int64_t>{3, 5});
  f.read("b", rb.data(), 7);
  f.read("s", rs.data(), std::vector<std::int64_t>{});
  EXPECT_EQ(ra, a);
  EXPECT_EQ(rb, b);
  EXPECT_EQ(rs[0], 42.0f);
  std::vector<double> rc(3), rc64(3);
  f.read("c", rc.data(), 3);
  f.read("c64", rc64.data(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rc[i], static_cast<double>(static_cast<float>(c[i])));
  EXPECT_EQ(rc64, c);
  EXPECT_EQ(f.entry("empty").numel, 0u);
  f.read("empty", ra.data(), 0);
  // Data section is 8-byte aligned.
  auto bytes = test::read_bytes(dir.file("t.safetensors"));
  std::uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

// Round to nearest even loses at most half an ulp: for normal values |err| <= 2^-8 |x| in BF16 (8
// significant bits) and <= 2^-11 |x| in F16 (11 significant bits).
TEST(Safetensors, RoundTripBf16AndF16WithinHalfUlp) {
  TempDir dir;
  auto v = test_values(4000, 3);
  for (float& x : v) x = std::clamp(x, -60000.0f, 60000.0f);  // F16 range; test_values spans 2^-20..2^20
  std::vector<double> vd(v.begin(), v.end());
  for (DType dt : {DType::kBF16, DType::kF16}) {
    const double rel = dt == DType::kBF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
    const double min_normal = dt == DType::kBF16 ? 1.17549435e-38 : std::ldexp(1.0, -14);
    write_safetensors(dir.file("h.safetensors"),
                      {{"x", {4000}, v.data(), nullptr, {}}, {"xd", {4000}, nullptr, vd.data(), {}}}, {}, dt);
    auto f = SafetensorsFile::open(dir.file("h.safetensors"));
    EXPECT_EQ(f.entry("x").dtype, dt);
    EXPECT_EQ(f.entry("x").end - f.entry("x").begin, 8000u);
    std::vector<float> r(4000);
    std::vector<double> rd(4000);
    f.read("x", r.data(), 4000);
    f.read("xd", rd.data(), 4000);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double x = v[i];
      const double bound = std::fabs(x) >= min_normal ? rel * std::fabs(x) : std::ldexp(1.0, -25);
      ASSERT_LE(std::fabs(r[i] - x), bound) << to_string(dt) << " x=" << x;
      ASSERT_EQ(rd[i], static_cast<double>(r[i]));  // from float and from the same double: same rounding
    }
  }
}

TEST(Safetensors, ConversionsRoundToNearestEven) {
  // BF16 keeps 8 significant bits: the ulp at 1 is 2^-7.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 0x1p-8f)), 1.0f);                // tie -> even (down)
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);  // tie -> even (up)
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f)), 1.0f + 0x1p-7f);
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::max()))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // F16 keeps 11 significant bits: the ulp at 1 is 2^-10.
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 0x1p-11f)), 1.0f);
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);
  EXPECT_EQ(f16_to_float(float_to_f16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(65520.0f))));
  EXPECT_EQ(float_to_f16(-65520.0f), 0xfc00);
  EXPECT_EQ(float_to_f16(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(float_to_f16(0x1p-25f), 0x0000);             // tie -> even (zero)
  EXPECT_EQ(float_to_f16(3 * 0x1p-25f), 0x0002);         // tie -> even
  EXPECT_EQ(float_to_f16(0x1p-14f - 0x1p-26f), 0x0400);  // rounds up into the smallest normal
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  // From double, rounding happens once: just above a bf16 tie (by less than a float ulp) rounds up,
  // where double -> float -> bf16 would land on the tie and round down.
  const double above_tie = 1.0 + 0x1p-8 + 0x1p-40;
  EXPECT_EQ(bf16_to_float(float_to_bf16(static_cast<float>(above_tie))), 1.0f);
  EXPECT_EQ(bf16_to_float(double_to_bf16(above_tie)), 1.0f + 0x1p-7f);
  EXPECT_EQ(f16_to_float(double_to_f16(1.0 + 0x1p-11 + 0x1p-40)), 1.0f + 0x1p-10f);
  EXPECT_EQ(f16_to_float(double_to_f16(1.0 + 0x1p-11)), 1.0f);
  EXPECT_TRUE(std::isinf(bf16_to_float(double_to_bf16(1e300))));
  EXPECT_EQ(double_to_f16(1e-300), 0x0000);
}

TEST(Safetensors, EveryHalfValueRoundTripsExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto u = static_cast<std::uint16_t>(h);
    const float f16 = f16_to_float(u);
    if (!std::isnan(f16)) {
      ASSERT_EQ(float_to_f16(f16), u) << h;
      ASSERT_EQ(double_to_f16(static_cast<double>(f16)), u) << h;
    }
    const float bf = bf16_to_float(u);
    if (!std::isnan(bf)) {
      ASSERT_EQ(float_to_bf16(bf), u) << h;
    }
  }
}

TEST(Safetensors, WriterRefusesBadInput) {
  TempDir dir;
  float x = 1.0f;
  const std::string p = dir.file("w.safetensors");
  expect_error(
      [&] {
        write_safetensors(p, {{"a", {1}, &x, nullptr, {}}, {"a", {1}, &x, nullptr, {}}});
      },
      {"'a'", "twice"});
  expect_error([&] { write_safetensors(p, {{"a", {-1}, &x, nullptr, {}}}); }, {"negative"});
  expect_error([&] { write_safetensors(p, {{"a", {1}, nullptr, nullptr, {}}}); }, {"exactly one"});
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(Safetensors, IntegerDtypeOpensButIsNotReadAsFloat) {
  TempDir dir;
  std::string header = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
  std::vector<std::uint8_t> bytes;
  test::append_pod(bytes, static_cast<std::uint64_t>(header.size()));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + 16, 0);
  test::write_bytes(dir.file("i.safetensors"), bytes);
  auto f = SafetensorsFile::open(dir.file("i.safetensors"));
  EXPECT_FALSE(f.entry("ids").convertible);
  EXPECT_EQ(f.entry("ids").dtype_name, "I64");
  std::vector<float> out(2);
  expect_error([&] { f.read("ids", out.data(), 2); }, {"'ids'", "I64", "cannot be read"});
  expect_error([&] { f.read("nope", out.data(), 2); }, {"no tensor named 'nope'"});
  expect_error([&] { (void)f.entry("nope"); }, {"'nope'"});
}

TEST(Safetensors, ReadChecksElementCountAndShape) {
  TempDir dir;
  std::vector<float> a(12, 1.0f);
  write_safetensors(dir.file("t.safetensors"), {{"w", {3, 4}, a.data(), nullptr, {}}});
  auto f = SafetensorsFile::open(dir.file("t.safetensors"));
  std::vector<float> out(12);
  expect_error([&] { f.read("w", out.data(), 10); }, {"'w'", "expected 10 elements, found 12", "[3, 4]"});
  expect_error(
      [&] {
        f.read("w", out.data(), std::vector<std::int64_t>{4, 3});
      },
      {"'w'", "expected shape [4, 3], found [3, 4]"});
}

// ---------------------------------------------------------------------------------------------
// Hostile files, written byte by byte.

std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_bytes, std::uint64_t length_field) {
  std::vector<std::uint8_t> bytes;
  test::append_pod(bytes, length_field);
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<std::uint8_t>(i));
  return bytes;
}
std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_bytes) {
  return make_file(header, data_bytes, header.size());
}

void expect_open_error(const std::vector<std::uint8_t>& bytes, std::initializer_list<std::string> parts) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  test::write_bytes(p, bytes);
  std::vector<std::string> all(parts);
  all.push_back("bad.safetensors");  // every error names the file
  try {
    (void)SafetensorsFile::open(p);
    ADD_FAILURE() << "expected an error containing '" << *parts.begin() << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& s : all) EXPECT_NE(msg.find(s), std::string::npos) << "missing '" << s << "' in: " << msg;
  }
}

const std::string kOne = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsHostile, ValidBaselineOpens) {
  TempDir dir;
  test::write_bytes(dir.file("ok.safetensors"), make_file(kOne, 8));
  EXPECT_NO_THROW((void)SafetensorsFile::open(dir.file("ok.safetensors")));
}

TEST(SafetensorsHostile, ShortFile) { expect_open_error({1, 2, 3}, {"too short"}); }

TEST(SafetensorsHostile, HeaderLengthBeyondFile) {
  expect_open_error(make_file(kOne, 8, kOne.size() + 9), {"header length", "exceeds the file"});
}

TEST(SafetensorsHostile, HeaderLengthHuge) {
  expect_open_error(make_file(kOne, 8, std::uint64_t{1} << 62), {"exceeds the limit"});
  expect_open_error(make_file(kOne, 8, ~std::uint64_t{0}), {"exceeds the limit"});
}

TEST(SafetensorsHostile, BadJson) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32",)", 8), {"not valid JSON"});
  expect_open_error(make_file("", 0), {"not valid JSON"});
  expect_open_error(make_file("[1,2]", 0), {"expected a JSON object"});
  expect_open_error(make_file(R"({"a":[1]})", 0), {"tensor 'a'", "expected an object"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), {"tensor 'a'", "data_offsets"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), {"data_offsets"});
  expect_open_error(make_file(R"({"a":{"dtype":1,"shape":[2],"data_offsets":[0,8]}})", 8), {"dtype"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8), {"shape"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
                    {"shape[0]", "non-negative integer"});
}

TEST(SafetensorsHostile, UnknownDtype) {
  expect_open_error(make_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "unknown dtype 'F33'"});
}

TEST(SafetensorsHostile, NegativeShape) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "shape[0]", "non-negative", "-2"});
}

TEST(SafetensorsHostile, ShapeOverflow) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "overflows"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "overflows"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "too large"});
}

TEST(SafetensorsHostile, OffsetsOutOfRange) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8),
                    {"tensor 'a'", "past the data section"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                    {"tensor 'a'", "begin after end"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", 8),
                    {"tensor 'a'", "data_offsets[0]"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", 8),
                    {"tensor 'a'", "past the data section"});
}

TEST(SafetensorsHostile, SizeDisagreesWithShape) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "span 8 bytes, expected 12"});
  expect_open_error(make_file(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 8),
                    {"tensor 'a'", "expected 4"});
}

TEST(SafetensorsHostile, OverlappingTensors) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12),
                    {"'a'", "'b'", "overlap"});
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                              8),
                    {"overlap"});
}

TEST(SafetensorsHostile, HoleAndTrailingBytes) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                    {"bytes [0, 4)", "belong to no tensor"});
  expect_open_error(make_file(kOne, 9), {"holds 9 bytes", "end at byte 8"});
}

TEST(SafetensorsHostile, DuplicateName) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              8),
                    {"'a'", "more than once"});
}

TEST(SafetensorsHostile, BadMetadata) {
  expect_open_error(make_file(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
                    {"__metadata__", "'k'", "expected a string"});
  expect_open_error(make_file(R"({"__metadata__":[],"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
                    {"__metadata__"});
}

// A real file cut at every byte offset is refused, never read half.
TEST(SafetensorsHostile, TruncatedAtEveryOffset) {
  TempDir dir;
  std::vector<float> a(6, 0.5f), b(5, 2.0f);
  const std::string p = dir.file("full.safetensors");
  write_safetensors(p, {{"a", {2, 3}, a.data(), nullptr, {}}, {"b", {5}, b.data(), nullptr, {}}}, {{"format", "pt"}});
  const auto bytes = test::read_bytes(p);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    test::write_bytes(dir.file("cut.safetensors"), std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + cut));
    EXPECT_THROW((void)SafetensorsFile::open(dir.file("cut.safetensors")), Error) << "cut at " << cut;
  }
  EXPECT_NO_THROW((void)SafetensorsFile::open(p));
}

// Random byte corruption of the header never crashes: it opens or throws zebra::Error.
TEST(SafetensorsHostile, CorruptedHeaderBytesNeverCrash) {
  TempDir dir;
  std::vector<float> a(6, 0.5f);
  const std::string p = dir.file("full.safetensors");
  write_safetensors(p, {{"a", {2, 3}, a.data(), nullptr, {}}});
  const auto bytes = test::read_bytes(p);
  Rng rng(7);
  int refused = 0;
  for (int trial = 0; trial < 200; ++trial) {
    auto bad = bytes;
    const std::size_t header_end = std::min<std::size_t>(bad.size(), 80);
    for (int k = 0; k < 3; ++k) bad[rng.below(header_end)] = static_cast<std::uint8_t>(rng.below(256));
    test::write_bytes(dir.file("bad.safetensors"), bad);
    try {
      auto f = SafetensorsFile::open(dir.file("bad.safetensors"));
      for (const auto& [name, e] : f.tensors()) {
        if (!e.convertible) continue;
        std::vector<double> out(e.numel);
        f.read(name, out.data(), e.numel);
      }
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);  // the corruption reaches the header checks (else the loop tests nothing)
}

// Nesting ~10^5 deep parses, but nlohmann::json copies and dumps recursively: the header is refused by its
// depth before that (it used to overflow the stack in json_non_negative's dump).
TEST(SafetensorsHostile, DeeplyNestedShapeIsRefusedByDepth) {
  for (const std::string field : {"shape", "data_offsets"}) {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const std::string key = "\"" + field + "\":";
    const std::size_t at = header.find(key) + key.size();
    const std::size_t end = header.find(']', at) + 1;
    header = header.substr(0, at) + "[" + deep + "]" + header.substr(end);
    expect_open_error(make_file(header, 8), {"nested more than 64 levels", "field 'a'"});
  }
}

// An error echoes a hostile value cut short: a 100,000-element shape is not a 400 KB message.
TEST(SafetensorsHostile, ErrorsEchoLongValuesBounded) {
  std::string shape = "[";
  for (int i = 0; i < 100000; ++i) shape += (i ? ",65536" : "65536");
  shape += "]";
  const std::string header = R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8]}})";
  TempDir dir;
  test::write_bytes(dir.file("bad.safetensors"), make_file(header, 8));
  try {
    (void)SafetensorsFile::open(dir.file("bad.safetensors"));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("overflows 64 bits"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bytes)"), std::string::npos) << msg;  // the full size of the value is stated
    EXPECT_LT(msg.size(), 400u) << msg.substr(0, 400);
  }
  EXPECT_EQ(shape_string(std::vector<std::int64_t>(100000, 7)), "[7, 7, 7, 7, 7, 7, 7, 7, ... (100000 dimensions)]");
}

}  // namespace
}  // namespace zebra
