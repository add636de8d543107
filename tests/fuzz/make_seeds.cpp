// Writes the seed corpus of the fuzz harnesses: small valid files of every format, made by zebra's own writers
// (so that the seeds follow the formats as zebra writes and reads them) plus a few hand-written text inputs.
//   make_seeds OUT_DIR      writes OUT_DIR/<reader>/<name>, the layout of tests/fuzz/seeds/
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/llama2c_vocab.hpp"
#include "data/vocab_util.hpp"
#include "io/tiny_gguf.hpp"
#include "train/tiny_train_config.hpp"
#include "zebra/data/llama2c_tokenizer.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/llama2c.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/util/atomic_file.hpp"

namespace fs = std::filesystem;
using namespace zebra;

namespace {

fs::path out_root;

void put(const std::string& reader, const std::string& name, const std::string& bytes) {
  fs::create_directories(out_root / reader);
  std::ofstream(out_root / reader / name, std::ios::binary) << bytes;
}
void put_file(const std::string& reader, const std::string& name, const fs::path& from) {
  put(reader, name, read_file(from.string()));
}

// The tests' tiny Zebra model (global, local), or the same with every layer global.
ModelConfig tiny(bool zebra_layout) {
  ModelConfig c = test::tiny_train_config(16);
  if (!zebra_layout) {
    c.group_size = 1;
    c.layer_types.clear();
    c.resolve();
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  out_root = argv[1];
  const fs::path tmp = fs::temp_directory_path() / "zebra_make_seeds";
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  // Model directories: safetensors (F32 and BF16), config.json of both layouts, a shard index.
  for (const bool z : {false, true}) {
    ParameterSet<float> p(tiny(z));
    init_parameters(p, 1);
    SaveModelOptions o;
    o.dtype = z ? DType::kBF16 : DType::kF32;
    const fs::path dir = tmp / (z ? "zebra" : "llama");
    save_model_dir(dir.string(), p, o);
    put_file("safetensors", z ? "zebra_bf16.safetensors" : "llama_f32.safetensors", dir / "model.safetensors");
    put_file("hf_config", z ? "ministral.json" : "llama.json", dir / "config.json");
    if (!z) {
      std::string index = "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {";
      bool first = true;
      for (const TensorInfo& t : p.layout.tensors) {
        index += std::string(first ? "" : ", ") + "\"" + t.name + "\": \"model-00001-of-00001.safetensors\"";
        first = false;
      }
      put("shard_index", "index.json", index + "}}");
    }
    // Training state: trainer_state.json as save_checkpoint writes it.
    AlignedBuffer<float> m(p.layout.total), v(p.layout.total);
    TrainerState st;
    st.step = 7;
    st.tokens_seen = 7 * 64;
    st.run = {{"lr", 0.001}, {"inputs", {"a.bin"}}};
    save_checkpoint((tmp / "ck").string(), p, m, v, st, "");
    put_file("trainer_state", z ? "state_b.json" : "state_a.json", tmp / "ck" / "trainer_state.json");
    fs::remove_all(tmp / "ck");
  }
  put("hf_config", "zebra_original.json",
      R"({"vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2,
          "intermediate_size": 32, "self_attn_type": "mix", "layer_group_size": 2, "window_size": 7,
          "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}})");

  // GGUF: the tests' tiny llama (quantized tensors, BPE vocabulary, chat template).
  {
    test::TinyLlama t;
    std::vector<GgufTensorToWrite> tensors;
    for (const auto& [n, s] : t.specs) tensors.push_back({n, s.first, s.second, t.data.at(n)});
    write_gguf((tmp / "tiny.gguf").string(), t.metadata, tensors);
    put_file("gguf", "tiny_llama.gguf", tmp / "tiny.gguf");
  }

  // llama2.c: a checkpoint and a tokenizer.bin.
  {
    ParameterSet<float> p(tiny(false));
    init_parameters(p, 2);
    export_llama2c_v0((tmp / "model.bin").string(), p);
    put_file("llama2c", "tiny.bin", tmp / "model.bin");
    test::Llama2cVocab v = test::llama2c_vocab({" t", "he", " the", "a", "b", " "});
    Llama2cTokenizer(v.pieces, v.scores, 8).save((tmp / "tokenizer.bin").string());
    put_file("llama2c_tokenizer", "tokenizer.bin", tmp / "tokenizer.bin");
  }

  // SentencePiece: BPE and unigram models trained on a few lines.
  {
    std::vector<std::string> docs;
    for (int i = 0; i < 40; ++i)
      docs.push_back("the zebra has stripes " + std::to_string(i) + "\nlocal and global attention");
    for (const char* type : {"bpe", "unigram"}) {
      SentencePieceTrainOptions o;
      o.vocab_size = 300;
      o.model_type = type;
      train_sentencepiece(docs, o, (tmp / "sp.model").string());
      put_file("sentencepiece", std::string(type) + ".model", tmp / "sp.model");
    }
  }

  // tokenizer.json: byte-level BPE and SentencePiece-style vocabularies as zebra writes them.
  {
    VocabData bpe = test::byte_level_vocab({{"a", "b"}, {" ", "w"}, {"ab", "c"}}, {"<|endoftext|>"}, {"<user>"});
    bpe.bos_id = bpe.eos_id = static_cast<std::int32_t>(bpe.tokens.size() - 2);
    put("bpe_tokenizer", "byte_level.json", bpe_tokenizer_json(bpe, ByteLevelOptions{}));
    VocabData spm = test::spm_vocab({{"\xE2\x96\x81"
                                      "a",
                                      -1.0f},
                                     {"ab", -2.0f}});
    put("bpe_tokenizer", "spm.json", spm_tokenizer_json(spm, true));
  }
  put("bpe_text", "text.txt", "Hello world, abc weber \xE2\x98\x83 <|endoftext|> <user>\n\t12 345");
  put("bpe_text", "bytes.bin", std::string("\x00\x01\xFF\xFE\x80 ab\xC3", 10));

  // Token datasets: 16-bit and 32-bit tokens, several documents.
  for (const std::int64_t vocab : {std::int64_t{300}, std::int64_t{70000}}) {
    const std::string path = (tmp / "tokens.bin").string();
    TokenDatasetWriter w(path, vocab, 1, 2);
    const std::vector<std::vector<std::int32_t>> docs = {{5, 6, 7}, {static_cast<std::int32_t>(vocab - 1)}, {9, 9, 9}};
    for (const auto& d : docs) w.add_document(d);
    w.finish();
    put_file("token_dataset", vocab > 65535 ? "tokens32.bin" : "tokens16.bin", path);
  }

  // Corpora (the first byte picks .txt, .jsonl, .json, .jsonl.zst).
  put("corpus", "text", std::string("\x00", 1) + "\xEF\xBB\xBFOne document.\nSecond line \xFF invalid.");
  put("corpus", "jsonl", std::string("\x01", 1) + "{\"text\": \"a\"}\n\n{\"text\": \"b \\u00e9\"}\r\n{\"id\": 3}\n");
  put("corpus", "json", std::string("\x02", 1) + "[{\"text\": \"x\"}, {\"text\": \"y\"}]");
  {
    const std::string text = "{\"text\": \"compressed\"}\n";
    write_file_atomic((tmp / "c.jsonl").string(), text);
    const std::string cmd = "zstd -q -f " + (tmp / "c.jsonl").string() + " -o " + (tmp / "c.jsonl.zst").string();
    if (std::system(cmd.c_str()) == 0) put("corpus", "jsonl_zst", "\x03" + read_file((tmp / "c.jsonl.zst").string()));
  }

  // Chat records and the chat template renderer.
  put("chat_records", "records.jsonl",
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}, "
      "{\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n"
      "{\"instruction\": \"Add\", \"input\": \"1 2\", \"output\": \"3\"}\n"
      "{\"messages\": \"no\"}\nnot json\n");
  const char kConversation[] = "\0system\0Be brief.\0user\0Hi there\0assistant\0Hello.";
  const std::string conversation(kConversation, sizeof kConversation - 1);
  put("chat_template", "chatml",
      "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
      "{% endfor %}" +
          conversation);
  put("chat_template", "llama2", "[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n" + conversation);
  put("chat_template", "plain", conversation);

  fs::remove_all(tmp);
  return 0;
}
