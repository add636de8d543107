#include "zebra/data/tokenizer_json.hpp"

#include <gtest/gtest.h>

#include "data/temp_dir.hpp"
#include "data/vocab_util.hpp"
#include "zebra/data/spm_vocab_tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using test::TempDir;
using test::write_bytes;
using Ids = std::vector<std::int32_t>;

// A Llama-3-style file: Split with the regex, ByteLevel without its own, added special tokens, a
// template that adds BOS, ignore_merges, merges as pairs.
const char* kLlama3Style = R"({
  "version": "1.0",
  "added_tokens": [{"id": 5, "content": "<|begin_of_text|>", "special": true},
                   {"id": 6, "content": "<tool>", "special": false}],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "ignore_merges": true,
            "vocab": {"a": 0, "b": 1, "\u0120": 2, "ab": 3, "\u0120ab": 4},
            "merges": [["a", "b"], ["\u0120", "ab"]]}
})";

TEST(TokenizerJson, ReadsByteLevelBpe) {
  const TokenizerJson t = parse_tokenizer_json(kLlama3Style, "tokenizer.json");
  EXPECT_EQ(t.vocab.model, "gpt2");
  ASSERT_EQ(t.vocab.tokens.size(), 7u);
  EXPECT_EQ(t.vocab.token_types[5], static_cast<int>(TokenType::kControl));
  EXPECT_EQ(t.vocab.token_types[6], static_cast<int>(TokenType::kUserDefined));
  EXPECT_EQ(t.vocab.merges, (std::vector<std::string>{"a b", "\xC4\xA0 ab"}));
  EXPECT_EQ(t.vocab.bos_id, 5);
  EXPECT_EQ(t.vocab.add_bos, std::optional<bool>(true));
  ASSERT_TRUE(t.byte_level.regexes.has_value());
  EXPECT_EQ(t.byte_level.regexes->size(), 1u);
  EXPECT_EQ(t.byte_level.ignore_merges, std::optional<bool>(true));
  BpeTokenizer tok(t.vocab, "tokenizer.json", t.byte_level);
  EXPECT_EQ(tok.encode("ab ab<tool>"), (Ids{3, 4, 6}));
  EXPECT_EQ(tok.encode_special("<|begin_of_text|>ab"), (Ids{5, 3}));
}

TEST(TokenizerJson, ConfigBesideTheFileGivesBosEosAndTemplate) {
  TempDir dir;
  write_bytes(dir / "tokenizer.json", kLlama3Style);
  write_bytes(dir / "tokenizer_config.json",
              R"({"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<tool>", "add_bos_token": false,
                  "chat_template": "{{ messages }}"})");
  auto tok = load_tokenizer(dir / "tokenizer.json");
  EXPECT_EQ(tok->bos_id(), 5);
  EXPECT_EQ(tok->eos_id(), 6);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(dynamic_cast<VocabTokenizer&>(*tok).vocab().chat_template, "{{ messages }}");
  write_bytes(dir / "tokenizer_config.json", R"({"eos_token": "<nope>"})");
  EXPECT_THROW(load_tokenizer(dir / "tokenizer.json"), Error);
}

TEST(TokenizerJson, SaveLoadRoundTripByteLevel) {
  TempDir dir;
  VocabData v = test::byte_level_vocab({{" ", "h"}, {" h", "i"}}, {"<|endoftext|>"}, {"<extra>"});
  v.bos_id = v.eos_id = 258;
  v.pre = "llama-bpe";
  v.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
  BpeTokenizer a(v, "a");
  a.save(dir / a.file_name());
  // Sniffed by content under another name, too.
  write_bytes(dir / "copy/vocab.dat", read_file(dir / "tokenizer.json"));
  for (const std::string& path : {dir / "tokenizer.json", dir / "copy/vocab.dat"}) {
    auto b = load_tokenizer(path);
    EXPECT_EQ(b->vocab_size(), a.vocab_size()) << path;
    for (std::string s : {"hi hi 123456 <|endoftext|> <extra>x", "", "   \n\n\t", "Caf\xC3\xA9 \xF0\x9F\x9A\x80"}) {
      EXPECT_EQ(b->encode(s), a.encode(s)) << s;
      EXPECT_EQ(b->encode_special(s), a.encode_special(s)) << s;
    }
  }
  auto b = load_tokenizer(dir / "tokenizer.json");
  EXPECT_EQ(b->bos_id(), 258);
  EXPECT_EQ(b->eos_id(), 258);
  EXPECT_EQ(b->add_bos(), a.add_bos());
  EXPECT_EQ(dynamic_cast<VocabTokenizer&>(*b).vocab().chat_template, v.chat_template);
}

TEST(TokenizerJson, SaveLoadRoundTripSentencePieceStyle) {
  TempDir dir;
  VocabData v = test::small_spm_vocab();
  SpmVocabTokenizer a(v, "a");
  a.save(dir / a.file_name());
  auto b = load_tokenizer(dir / "tokenizer.json");
  auto& bs = dynamic_cast<SpmVocabTokenizer&>(*b);
  EXPECT_TRUE(bs.uses_merges());  // merges derived from the scores
  EXPECT_TRUE(bs.add_space_prefix());
  for (std::string s : {"abc", "ab ab bca", " c a b", "\xC3\xA9x", "", "a</s>b"}) {
    EXPECT_EQ(b->encode(s), a.encode(s)) << s;
    EXPECT_EQ(b->encode_special(s), a.encode_special(s)) << s;
  }
  EXPECT_EQ(b->bos_id(), 1);
  EXPECT_EQ(b->eos_id(), 2);
  EXPECT_EQ(bs.unk_id(), 0);
  EXPECT_TRUE(b->add_bos());
}

std::string error_of(const std::string& json) {
  try {
    parse_tokenizer_json(json, "hostile/tokenizer.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(TokenizerJson, HostileFilesGetClearErrors) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(error_of(deep).find("nested more than 16 levels"), std::string::npos) << error_of(deep);
  EXPECT_NE(error_of("{\"model\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[]").find("expected an object"), std::string::npos);
  EXPECT_NE(error_of("{}").find("field model is missing"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "WordPiece"}})").find("model.type"), std::string::npos);
  const std::string head = R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", )";
  EXPECT_NE(error_of(head + R"("vocab": {"a": -1}, "merges": []}})").find("model.vocab[\"a\"]"), std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 99999999999}, "merges": []}})").find("expected a token id"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 0, "b": 0}, "merges": []}})").find("both"), std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 0, "b": 5}, "merges": []}})").find("every id"), std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 0}, "merges": [7]}})").find("model.merges[0]"), std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 0}, "merges": []}})").find("merges is empty"), std::string::npos);
  EXPECT_NE(error_of(head + R"("vocab": {"a": 0}, "merges": ["a a"], "dropout": 0.1}})").find("dropout"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}})").find("neither"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed"},
                         "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}})")
                .find("Isolated"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}}})")
                .find("pre_tokenizer.type"),
            std::string::npos);
  const std::string added =
      head + R"("vocab": {"a": 0}, "merges": ["a a"]}, "added_tokens": [{"id": 0, "content": "zz"}]})";
  EXPECT_NE(error_of(added).find("added_tokens[0]"), std::string::npos) << error_of(added);
  EXPECT_NE(error_of(R"({"model": {"type": 5}})").find("model.type"), std::string::npos);
  const std::string odd_post =
      head + R"("vocab": {"a": 0, "aa": 1}, "merges": ["a a"]}, "post_processor": {"type": 7}})";
  EXPECT_NE(error_of(odd_post).find("hostile/tokenizer.json"), std::string::npos) << error_of(odd_post);
  // A huge value is never echoed whole.
  const std::string big = head + R"("vocab": {"a": ")" + std::string(100000, 'x') + R"("}, "merges": []}})";
  EXPECT_LT(error_of(big).size(), 400u) << error_of(big).substr(0, 400);
}

TEST(TokenizerJson, ReadsLlama2StyleByteFallback) {
  const char* j = R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
              "vocab": {"<unk>": 0, "<s>": 1, "<0xC3>": 2, "<0xA9>": 3, "\u2581": 4, "a": 5, "\u2581a": 6},
              "merges": ["\u2581 a"]}})";
  const TokenizerJson t = parse_tokenizer_json(j, "llama2.json");
  EXPECT_EQ(t.vocab.model, "llama");
  EXPECT_EQ(t.vocab.add_space_prefix, std::optional<bool>(true));
  EXPECT_EQ(t.vocab.token_types[0], static_cast<int>(TokenType::kUnknown));
  EXPECT_EQ(t.vocab.token_types[2], static_cast<int>(TokenType::kByte));
  SpmVocabTokenizer tok(t.vocab, "llama2.json");
  EXPECT_EQ(tok.encode("a\xC3\xA9"), (Ids{6, 2, 3}));
  EXPECT_EQ(tok.decode(tok.encode("a\xC3\xA9 a")), "a\xC3\xA9 a");
}

}  // namespace
}  // namespace zebra
