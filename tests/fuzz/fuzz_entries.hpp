// One entry per reader of untrusted input: the code that both the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp)
// and the regression replay of the default suite (tests/train/fuzz_regressions_test.cpp) run on a byte string.
//
// An entry feeds the bytes to the reader the way zebra does (as a file where the reader takes a path) and then
// uses what it returns (reads the tensors, encodes and decodes text), so that a value the reader accepted but
// should not have is caught where it is used. A refusal (zebra::Error) is a correct answer; anything else --
// a crash, a sanitizer report, another exception, a timeout, an allocation beyond the fuzzer's -rss_limit_mb /
// -malloc_limit_mb -- is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/vocab_util.hpp"
#include "train/tiny_train_config.hpp"
#include "zebra/data/bpe_tokenizer.hpp"
#include "zebra/data/chat_records.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/data/llama2c_tokenizer.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/data/spm_vocab_tokenizer.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/data/vocab_tokenizer.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/io/gguf_model.hpp"
#include "zebra/io/llama2c.hpp"
#include "zebra/io/safetensors.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/util/error.hpp"

namespace zebra::fuzz {

using Bytes = std::span<const std::uint8_t>;
namespace fs = std::filesystem;

inline std::string_view as_text(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A scratch folder of this process (on tmpfs when there is one: the harnesses write a file per input), removed
// at exit.
inline const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("zebra_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

inline std::string put(const std::string& name, Bytes b) {
  const fs::path p = scratch() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return p.string();
}

// Runs one step of an entry; a refusal ends only that step, so that later steps (the vocabulary of a GGUF
// whose config was refused) still run.
inline void step(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error&) {
  }
}

const std::string kSample = "Hello, world! Zebra stripes 123\n  naïve café ☃ \t end";

inline void use_tokenizer(const Tokenizer& tok) {
  step([&] {
    const std::vector<std::int32_t> ids = tok.encode(kSample);
    (void)tok.decode(ids);
    for (std::int32_t id : ids) (void)tok.piece(id);
    (void)tok.bos_id();
    (void)tok.eos_id();
  });
}

inline void safetensors(Bytes b) {
  step([&] {
    const SafetensorsFile f = SafetensorsFile::open(put("fuzz.safetensors", b));
    for (const auto& [name, e] : f.tensors()) {
      if (!e.convertible) continue;
      std::vector<float> out(e.numel);  // bounded: open() checked numel against the data section
      f.read(name, out.data(), e.shape);
    }
  });
}

inline void hf_config(Bytes b) {
  step([&] {
    ModelConfig c = load_config(put("config.json", b));
    c.resolve();
    (void)make_param_layout(c);  // the sizes only: nothing allocated from the file's numbers
    (void)config_to_json(c).dump();
  });
}

// A model directory holding a valid config.json and one shard; the index is the input.
inline void shard_index(Bytes b) {
  static const fs::path dir = [] {
    const ModelConfig c = test::tiny_train_config(8);
    const fs::path d = scratch() / "model";
    save_model_dir(d.string(), ParameterSet<float>(c));
    fs::rename(d / "model.safetensors", d / "model-00001-of-00001.safetensors");
    return d;
  }();
  const std::string index = (dir / "model.safetensors.index.json").string();
  std::ofstream(index, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  step([&] { (void)load_model_dir(dir.string()); });
}

inline void gguf(Bytes b) {
  step([&] {
    const std::string path = put("fuzz.gguf", b);
    const GgufFile f = GgufFile::open(path);
    step([&] {
      ModelConfig c = gguf_model_config(f);
      c.resolve();
      for (const GgufModelTensor& t : gguf_model_tensors(f, c)) {
        const WeightMatrix m = t.matrix();
        if (m.rows == 0) continue;
        std::vector<float> row(static_cast<std::size_t>(m.cols));
        quant::dequantize_row(m.dtype, m.row(m.rows - 1), row.data(), m.cols);
      }
    });
    step([&] { use_tokenizer(*make_vocab_tokenizer(gguf_vocab(f), path)); });
  });
}

inline void llama2c(Bytes b) {
  step([&] { (void)load_llama2c(put("fuzz.bin", b)); });
}

inline void llama2c_tokenizer(Bytes b) {
  step([&] { use_tokenizer(*Llama2cTokenizer::from_bytes(as_text(b), "tokenizer.bin")); });
}

inline void sentencepiece(Bytes b) {
  step([&] { use_tokenizer(*SentencePieceTokenizer::from_serialized(std::string(as_text(b)), "fuzz.model")); });
}

// tokenizer.json: the vocabulary, merges, pre-tokenizer and added tokens.
inline void bpe_tokenizer(Bytes b) {
  step([&] {
    TokenizerJson t = parse_tokenizer_json(as_text(b), "tokenizer.json");
    use_tokenizer(*make_vocab_tokenizer(std::move(t.vocab), "tokenizer.json"));
  });
}

// Arbitrary text through fixed byte-level BPE and SentencePiece-style vocabularies; the same bytes read as
// token ids are decoded.
inline void bpe_text(Bytes b) {
  static const BpeTokenizer bpe(test::byte_level_vocab({{"a", "b"}, {" ", "w"}, {"ab", "c"}, {"e", "r"}, {" w", "er"}},
                                                       {"<|endoftext|>"}, {"<user>"}),
                                "fuzz-bpe");
  static const SpmVocabTokenizer spm(test::spm_vocab({{"\xE2\x96\x81"
                                                       "a",
                                                       -1.0f},
                                                      {"ab", -2.0f},
                                                      {"\xE2\x96\x81", -3.0f}}),
                                     "fuzz-spm");
  const std::string_view text = as_text(b);
  for (const VocabTokenizer* tok :
       {static_cast<const VocabTokenizer*>(&bpe), static_cast<const VocabTokenizer*>(&spm)}) {
    step([&] { (void)tok->decode(tok->encode(text)); });
    step([&] {
      std::vector<std::int32_t> ids;
      for (std::size_t i = 0; i + 1 < b.size(); i += 2) {
        ids.push_back(static_cast<std::int32_t>((b[i] | (b[i + 1] << 8)) % tok->vocab_size()));
      }
      (void)tok->decode(ids);
    });
  }
}

inline void token_dataset(Bytes b) {
  step([&] {
    const TokenDataset d = TokenDataset::open(put("fuzz-tokens.bin", b));
    std::int64_t sum = 0;
    for (std::int64_t doc = 0; doc < d.n_docs() && doc < 64; ++doc) {
      const auto [begin, end] = d.doc_range(doc);
      for (std::int64_t i = begin; i < end && i < begin + 64; ++i) sum += d.token(i) + (d.scored(i) ? 1 : 0);
    }
    if (d.n_tokens() > 0) (void)d.doc_of(d.n_tokens() - 1);
    (void)sum;
  });
}

inline void trainer_state(Bytes b) {
  step([&] { (void)parse_trainer_state(as_text(b), "trainer_state.json").run.dump(); });
}

// The first byte picks the kind of file: text, JSONL, a JSON array (any of them zstd-compressed when the rest
// starts with zstd's magic number).
inline void corpus(Bytes b) {
  if (b.empty()) return;
  static const char* const kNames[] = {"fuzz.txt", "fuzz.jsonl", "fuzz.json", "fuzz.jsonl.zst"};
  const std::string path = put(kNames[b[0] % 4], b.subspan(1));
  for (const bool strict : {false, true}) {
    step([&] {
      CorpusOptions o;
      o.strict_utf8 = strict;
      std::size_t bytes = 0;
      for_each_document({path}, o, [&](std::string_view doc) { bytes += doc.size(); });
    });
  }
}

inline void chat_records(Bytes b) {
  const std::string_view text = as_text(b);
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    step([&] { (void)parse_chat_record(text.substr(at, nl - at)); });
    at = nl + 1;
  }
}

// "jinja\0role\0content\0role\0content...": a model's Jinja template (which picks the renderer) and a
// conversation, rendered and encoded.
inline void chat_template(Bytes b) {
  static const BpeTokenizer tok(test::byte_level_vocab({{"a", "b"}}, {"<|im_start|>", "<|im_end|>", "<s>", "</s>"}),
                                "fuzz-bpe");
  const std::string_view text = as_text(b);
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t end = text.find('\0', at);
    if (end == std::string_view::npos) end = text.size();
    parts.emplace_back(text.substr(at, end - at));
    at = end + 1;
  }
  std::vector<ChatMessage> messages;
  for (std::size_t i = 1; i + 1 < parts.size(); i += 2) messages.push_back({parts[i], parts[i + 1]});
  step([&] {
    const ChatTemplate& t = choose_chat_template("", parts[0]);
    for (const bool generation_prompt : {false, true}) {
      step([&] {
        const RenderedChat r = render_chat(t, messages, generation_prompt);
        (void)encode_chat(t, tok, r);
        (void)chat_stop_tokens(t, tok);
      });
    }
    if (!messages.empty()) {
      step([&] {
        const std::span<const ChatMessage> all(messages);
        (void)render_after_reply(t, all.first(all.size() - 1), all.last(1), true);
      });
    }
  });
}

struct Entry {
  const char* name;
  void (*run)(Bytes);
  bool binary;  // a binary format (the bar: 10^7 executions) or a text one (10^6)
};

inline const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = {
      {"safetensors", safetensors, true},
      {"hf_config", hf_config, false},
      {"shard_index", shard_index, false},
      {"gguf", gguf, true},
      {"llama2c", llama2c, true},
      {"llama2c_tokenizer", llama2c_tokenizer, true},
      {"sentencepiece", sentencepiece, true},
      {"bpe_tokenizer", bpe_tokenizer, false},
      {"bpe_text", bpe_text, false},
      {"token_dataset", token_dataset, true},
      {"trainer_state", trainer_state, false},
      {"corpus", corpus, false},
      {"chat_records", chat_records, false},
      {"chat_template", chat_template, false},
  };
  return all;
}

}  // namespace zebra::fuzz
