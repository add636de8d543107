#include "zebra/data/corpus.hpp"

#include <gtest/gtest.h>
#include <zstd.h>

#include "data/temp_dir.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;

const std::string kFFFD = "\xEF\xBF\xBD";

std::string sanitize(std::string_view s, std::int64_t* n = nullptr) {
  std::int64_t local = 0;
  std::string out = sanitize_utf8(s, &local);
  if (n != nullptr) *n = local;
  return out;
}

std::vector<std::string> read_docs(const std::vector<std::string>& inputs, CorpusOptions opt = {},
                                   CorpusStats* stats = nullptr) {
  std::vector<std::string> docs;
  for_each_document(
      inputs, opt, [&](std::string_view d) { docs.emplace_back(d); }, stats);
  return docs;
}

std::string zstd_compress(std::string_view data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// Expects a zebra::Error whose message contains every fragment.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "expected a zebra::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
  }
}

TEST(Utf8, ValidTextIsUnchanged) {
  const std::string s = "plain ASCII, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80, \xEF\xBF\xBF, \xF4\x8F\xBF\xBF";
  std::int64_t n = -1;
  EXPECT_EQ(sanitize(s, &n), s);
  EXPECT_EQ(n, 0);
  EXPECT_FALSE(find_invalid_utf8(s).has_value());
  EXPECT_EQ(count_utf8_chars("caf\xC3\xA9 \xF0\x9F\x98\x80"), 6);
}

TEST(Utf8, ReplacesMaximalSubparts) {
  std::int64_t n = 0;
  // Lone continuation bytes: one replacement each.
  EXPECT_EQ(sanitize("a\x80\x80z", &n), "a" + kFFFD + kFFFD + "z");
  EXPECT_EQ(n, 2);
  // Overlong encodings: C0/C1 are never valid leads; E0 80 / F0 80 break after the lead.
  EXPECT_EQ(sanitize("\xC0\xAF", &n), kFFFD + kFFFD);
  EXPECT_EQ(n, 2);
  EXPECT_EQ(sanitize("\xE0\x80\xAF", &n), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(sanitize("\xF0\x80\x80\xAF", &n), kFFFD + kFFFD + kFFFD + kFFFD);
  // Surrogates (ED A0..BF xx) are invalid: ED is a maximal subpart on its own.
  EXPECT_EQ(sanitize("x\xED\xA0\x80y", &n), "x" + kFFFD + kFFFD + kFFFD + "y");
  EXPECT_EQ(n, 3);
  // Above U+10FFFF and F5..FF.
  EXPECT_EQ(sanitize("\xF4\x90\x80\x80", &n), kFFFD + kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(sanitize("\xFF\xFE", &n), kFFFD + kFFFD);
  // A truncated sequence is one maximal subpart: E2 82 then a non-continuation, and at the end.
  EXPECT_EQ(sanitize("\xE2\x82z", &n), kFFFD + "z");
  EXPECT_EQ(n, 1);
  EXPECT_EQ(sanitize("ok\xF0\x9F\x98", &n), "ok" + kFFFD);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(sanitize("ok\xC3", &n), "ok" + kFFFD);
  // Unicode's own example (Table 3-8): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(sanitize("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", &n),
            "a" + kFFFD + kFFFD + kFFFD + "b" + kFFFD + "c" + kFFFD + kFFFD + "d");
  EXPECT_EQ(n, 6);
  EXPECT_EQ(find_invalid_utf8("abc\xE2\x82"), 3u);
  EXPECT_EQ(find_invalid_utf8("0123456789abcdef\x80"), 16u);  // after the 8-byte ASCII fast path
}

TEST(Utf8, OutputIsAlwaysValid) {
  // Every 1- and 2-byte string, and a stretch of 3-byte ones, sanitise to valid UTF-8.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_FALSE(find_invalid_utf8(sanitize(s)).has_value()) << a << " " << b;
    }
  }
}

TEST(Corpus, PlainTextFileIsOneDocument) {
  TempDir dir;
  write_bytes(dir / "a.txt", "\xEF\xBB\xBFline one\n\nline two\n");
  CorpusStats st;
  auto docs = read_docs({dir / "a.txt"}, {}, &st);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0], "line one\n\nline two\n");  // BOM dropped
  EXPECT_EQ(st.files, 1);
  EXPECT_EQ(st.documents, 1);
  EXPECT_EQ(st.characters, 19);
}

TEST(Corpus, InvalidUtf8IsReplacedAndCounted) {
  TempDir dir;
  write_bytes(dir / "bad.txt",
              "ab\xFF"
              "cd\xE2\x82");
  CorpusStats st;
  auto docs = read_docs({dir / "bad.txt"}, {}, &st);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0], "ab" + kFFFD + "cd" + kFFFD);
  EXPECT_EQ(st.replaced_utf8, 2);
  CorpusOptions strict;
  strict.strict_utf8 = true;
  expect_error([&] { read_docs({dir / "bad.txt"}, strict); }, {"bad.txt", "byte offset 2"});
}

TEST(Corpus, JsonlDocumentsAndBlankLines) {
  TempDir dir;
  write_bytes(dir / "d.jsonl",
              "{\"text\": \"first\", \"title\": \"x\"}\n\n{\"id\": 3, \"text\": \"sec\\u00e9ond\\nline\"}\r\n"
              "{\"text\": \"\"}\n{\"text\": \"last, no newline\"}");
  CorpusStats st;
  auto docs = read_docs({dir / "d.jsonl"}, {}, &st);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0], "first");
  EXPECT_EQ(docs[1], "sec\xC3\xA9ond\nline");
  EXPECT_EQ(docs[2], "last, no newline");
  EXPECT_EQ(st.empty_documents, 1);
  CorpusOptions keep;
  keep.keep_empty = true;
  EXPECT_EQ(read_docs({dir / "d.jsonl"}, keep).size(), 4u);
  CorpusOptions two;
  two.max_docs = 2;
  EXPECT_EQ(read_docs({dir / "d.jsonl"}, two).size(), 2u);
}

TEST(Corpus, JsonlErrorsNameFileAndLine) {
  TempDir dir;
  write_bytes(dir / "missing.jsonl", "{\"text\": \"ok\"}\n{\"title\": \"no text\"}\n");
  expect_error([&] { read_docs({dir / "missing.jsonl"}); }, {"missing.jsonl", "line 2", "no \"text\""});
  write_bytes(dir / "number.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": 42}\n");
  expect_error([&] { read_docs({dir / "number.jsonl"}); }, {"number.jsonl", "line 3", "expected a string"});
  write_bytes(dir / "broken.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated\n");
  expect_error([&] { read_docs({dir / "broken.jsonl"}); }, {"broken.jsonl", "line 2", "invalid JSON"});
  write_bytes(dir / "array.jsonl", "[1, 2]\n");
  expect_error([&] { read_docs({dir / "array.jsonl"}); }, {"array.jsonl", "line 1", "expected a JSON object"});
}

TEST(Corpus, JsonlInvalidUtf8) {
  TempDir dir;
  write_bytes(dir / "u.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"a\xC3(b\"}\n");
  CorpusStats st;
  auto docs = read_docs({dir / "u.jsonl"}, {}, &st);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1], "a" + kFFFD + "(b");
  EXPECT_EQ(st.replaced_utf8, 1);
  CorpusOptions strict;
  strict.strict_utf8 = true;
  // Line 2 starts at byte 15; the bad byte is 11 bytes into it.
  expect_error([&] { read_docs({dir / "u.jsonl"}, strict); }, {"u.jsonl", "line 2", "byte offset 26"});
}

TEST(Corpus, JsonArrayFile) {
  TempDir dir;
  write_bytes(dir / "a.json", " [{\"text\": \"one\"}, {\"text\": \"two\"}]");
  EXPECT_EQ(read_docs({dir / "a.json"}), (std::vector<std::string>{"one", "two"}));
  write_bytes(dir / "b.json", "[{\"text\": \"one\"}, {\"nope\": 1}]");
  expect_error([&] { read_docs({dir / "b.json"}); }, {"b.json", "array element 2"});
  write_bytes(dir / "c.json", "{\"text\": \"as jsonl\"}\n");
  EXPECT_EQ(read_docs({dir / "c.json"}), (std::vector<std::string>{"as jsonl"}));
}

TEST(Corpus, ZstdRoundTrip) {
  TempDir dir;
  std::string jsonl;
  std::vector<std::string> expected;
  for (int i = 0; i < 20000; ++i) {
    expected.push_back("document " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x'));
    jsonl += "{\"text\": \"" + expected.back() + "\"}\n";
  }
  ASSERT_GT(jsonl.size(), std::size_t{1} << 20);  // more than one 1 MiB read chunk
  write_bytes(dir / "d.jsonl.zst", zstd_compress(jsonl));
  EXPECT_EQ(read_docs({dir / "d.jsonl.zst"}), expected);
  // Two concatenated frames read as one stream; plain text is one document.
  std::string text = "alpha beta\ngamma\n";
  write_bytes(dir / "t.txt.zst", zstd_compress(text.substr(0, 7)) + zstd_compress(text.substr(7)));
  EXPECT_EQ(read_docs({dir / "t.txt.zst"}), std::vector<std::string>{text});
  EXPECT_EQ(read_maybe_compressed(dir / "t.txt.zst"), text);
}

TEST(Corpus, TruncatedOrCorruptZstd) {
  TempDir dir;
  std::string z = zstd_compress(std::string(100000, 'q') + "tail", 1);
  write_bytes(dir / "cut.txt.zst", z.substr(0, z.size() / 2));
  expect_error([&] { read_docs({dir / "cut.txt.zst"}); }, {"cut.txt.zst", "zstd"});
  std::string bad = z;
  for (std::size_t i = 8; i < bad.size(); i += 3) bad[i] = static_cast<char>(bad[i] ^ 0x5A);
  write_bytes(dir / "bad.txt.zst", bad);
  expect_error([&] { read_docs({dir / "bad.txt.zst"}); }, {"bad.txt.zst"});
}

TEST(Corpus, FolderWalkIsSortedAndFiltered) {
  TempDir dir;
  write_bytes(dir / "root/b.txt", "b");
  write_bytes(dir / "root/a.md", "a");
  write_bytes(dir / "root/sub/c.jsonl", "{\"text\": \"c\"}\n");
  write_bytes(dir / "root/A.txt.zst", zstd_compress("A"));
  write_bytes(dir / "root/skip.bin", "not a corpus file");
  write_bytes(dir / "root/sub2/d.json", "[{\"text\": \"d\"}]");
  write_bytes(dir / "extra.txt", "e");
  auto files = expand_corpus_inputs({dir / "extra.txt", dir / "root"});
  std::vector<std::string> expected = {dir / "extra.txt",  dir / "root/A.txt.zst",   dir / "root/a.md",
                                       dir / "root/b.txt", dir / "root/sub/c.jsonl", dir / "root/sub2/d.json"};
  EXPECT_EQ(files, expected);
  EXPECT_EQ(read_docs({dir / "extra.txt", dir / "root"}), (std::vector<std::string>{"e", "A", "a", "b", "c", "d"}));
  expect_error([&] { expand_corpus_inputs({dir / "nope"}); }, {"nope", "does not exist"});
  std::filesystem::create_directories(dir / "empty");
  expect_error([&] { expand_corpus_inputs({dir / "empty"}); }, {"no corpus files"});
}

}  // namespace
}  // namespace zebra
