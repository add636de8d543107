// Long-context adaptation end to end on a tiny quantized GGUF (tests/io/tiny_gguf.hpp): its tokenizer prepares
// the data, `--init` turns its Q8_0 / F16 weights into fp32 master weights, the model is re-laid and its RoPE
// adjusted, trained on a mixture of long and short sequences, and a resumed run is bit-identical. Checkpoints
// keep the tokenizer and its chat template, and record the new layout and RoPE.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "io/tiny_gguf.hpp"
#include "zebra/data/prepare.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/train/trainer.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::TinyLlama;

// The tiny GGUF with a vocabulary that encodes any text of a, b and spaces: "a", "b", "Ġ", "Ġa".
std::string write_gguf(const TempDir& dir) {
  TinyLlama m(0.1f);
  m.set("tokenizer.ggml.tokens", GgufValue::string_array({"<|endoftext|>", "<|im_start|>", "a", "b", "Ġ", "Ġa"}));
  m.set("tokenizer.ggml.merges", GgufValue::string_array({"Ġ a"}));
  return m.write(dir);
}

// Text of a fixed cycle, so that a model that learns it predicts most tokens surely.
std::string write_corpus(const TempDir& dir) {
  std::string text;
  for (int doc = 0; doc < 40; ++doc) {
    text += "{\"text\": \"";
    for (int i = 0; i < 12; ++i) text += "ab a b a ab a a b ";
    text += "ab\"}\n";
  }
  const std::string path = dir.file("corpus.jsonl");
  write_file_atomic(path, text);
  return path;
}

struct Prepared {
  std::string gguf, data_dir;
};

Prepared prepare_from_gguf(const TempDir& dir) {
  Prepared p;
  p.gguf = write_gguf(dir);
  PrepareOptions o;
  o.inputs = {write_corpus(dir)};
  o.out_dir = dir.file("data");
  o.tokenizer_path = p.gguf;
  o.tokenizer = load_tokenizer_or_model(p.gguf);
  o.valid_fraction = 0.1;
  o.progress = false;
  prepare_dataset(o);
  p.data_dir = o.out_dir;
  return p;
}

TrainOptions lcat_options(const Prepared& p, const std::string& out) {
  TrainOptions o;
  o.train_data = p.data_dir + "/train.bin";
  o.valid_data = p.data_dir + "/valid.bin";
  o.tokenizer_file = find_tokenizer_file(p.data_dir);
  o.init_from = p.gguf;
  ModelAdjustment a;
  a.group_size = 2;
  a.window = 8;
  a.set_rope_scaling = true;
  a.rope_scaling = RopeScaling::kYarn;
  a.rope_factor = 2.0;
  a.max_seq_len = 256;
  o.config = adjust_config(peek_model_config(p.gguf), a);
  o.out_dir = out;
  o.steps = 40;
  o.batch_size = 2;
  o.seq_len = 32;
  o.batch_mode = BatchMode::kDocument;
  o.doc_mask = true;
  o.mixture = MixtureOptions{0.5, 8};
  o.lr = LrSchedule{1e-2, 1e-3, 4, 0};
  o.optimizer.adamw.weight_decay = 0.0;
  o.eval_every = 0;
  o.eval_batches = 2;
  o.log_every = 0;
  o.plot = false;
  return o;
}

TEST(Lcat, ContinuesAQuantizedGgufAndRecordsTheNewLayout) {
  TempDir dir;
  const Prepared p = prepare_from_gguf(dir);
  EXPECT_TRUE(fs::exists(p.data_dir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(p.data_dir + "/tokenizer_config.json"));
  const TrainOptions o = lcat_options(p, dir.file("run"));
  const TrainResult r = run_training(o);
  // The tiny model starts near chance over 6 tokens (ln 6 = 1.79) and learns the cycle.
  EXPECT_GT(r.first_eval_loss, 1.0);
  EXPECT_LT(r.last_eval_loss, 0.6 * r.first_eval_loss);
  EXPECT_GT(r.long_micro_batches, 0);
  EXPECT_GT(r.short_micro_batches, 0);
  EXPECT_TRUE(std::isfinite(r.long_loss));
  EXPECT_TRUE(std::isfinite(r.short_loss));

  // The checkpoint is a model zebra and transformers read: re-laid (ministral, layer_types), YaRN from the
  // GGUF's 128 positions, the tokenizer with its chat template.
  const ModelConfig c = load_config(r.final_checkpoint);
  EXPECT_EQ(c.pattern_string(), "GL");
  EXPECT_EQ(c.window, 8);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kYarn);
  EXPECT_EQ(c.rope_scaling_factor, 2.0);
  EXPECT_EQ(c.rope_params().original_max_positions, 128);
  EXPECT_EQ(c.max_seq_len, 256);
  const LoadedModel m = load_any_model(r.final_checkpoint);
  const auto tok = load_model_tokenizer(m);
  EXPECT_NE(tok->chat_template().find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(tok->encode("ab a"), load_tokenizer_or_model(p.gguf)->encode("ab a"));
}

TEST(Lcat, ResumeFromAQuantizedGgufIsBitIdentical) {
  TempDir dir;
  const Prepared p = prepare_from_gguf(dir);
  TrainOptions straight = lcat_options(p, dir.file("straight"));
  straight.steps = 12;
  run_training(straight);

  TrainOptions split = straight;
  split.out_dir = dir.file("split");
  split.save_every = 5;
  split.keep_checkpoints = 0;
  run_training(split);
  for (const std::string& ck : list_checkpoints(split.out_dir)) {
    if (ck.find(checkpoint_name(5)) == std::string::npos) fs::remove_all(ck);
  }
  TrainOptions resumed = split;
  resumed.config.reset();
  resumed.init_from.clear();
  resumed.resume_from = split.out_dir;
  run_training(resumed);

  const ParameterSet<float> a = load_model_dir(list_checkpoints(straight.out_dir).back());
  const ParameterSet<float> b = load_model_dir(list_checkpoints(split.out_dir).back());
  ASSERT_EQ(a.data.size(), b.data.size());
  EXPECT_EQ(0, std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)));
}

// Re-laying with a window that covers the whole sequence changes no output: every key a global layer sees is
// still in the window.
TEST(Lcat, RelayingWithAWindowCoveringTheSequenceKeepsTheOutputs) {
  TempDir dir;
  const std::string gguf = write_gguf(dir);
  const std::int64_t T = 24;
  const LoadedModel original = load_any_model(gguf);
  ModelAdjustment relay;
  relay.group_size = 2;
  for (std::int64_t window : {T, T + 1, 4 * T}) {
    relay.window = window;
    const LoadedModel relaid = load_any_model(gguf, relay);
    ASSERT_EQ(relaid.config().pattern_string(), "GL");
    Transformer<float> a(original.weights()), b(relaid.weights());
    std::vector<std::int32_t> tokens(T), targets(T);
    for (std::int64_t t = 0; t < T; ++t) {
      tokens[static_cast<std::size_t>(t)] = static_cast<std::int32_t>((t * 7 + 3) % 6);
      targets[static_cast<std::size_t>(t)] = static_cast<std::int32_t>((t * 5 + 1) % 6);
    }
    const BatchView v{1, T, tokens.data(), targets.data(), nullptr};
    EXPECT_EQ(a.forward_loss(v).loss_sum, b.forward_loss(v).loss_sum) << "window " << window;
  }
  // A window shorter than the sequence does change them (the test can fail).
  relay.window = 4;
  const LoadedModel short_window = load_any_model(gguf, relay);
  Transformer<float> a(original.weights()), b(short_window.weights());
  std::vector<std::int32_t> tokens(T, 2), targets(T, 3);
  for (std::int64_t t = 0; t < T; t += 3) tokens[static_cast<std::size_t>(t)] = 5;
  const BatchView v{1, T, tokens.data(), targets.data(), nullptr};
  EXPECT_NE(a.forward_loss(v).loss_sum, b.forward_loss(v).loss_sum);
}

}  // namespace
}  // namespace zebra
