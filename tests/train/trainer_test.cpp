// Training loop: overfitting, bit-identical resume, corrupt checkpoints, schedule, NaN handling.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "zebra/data/token_dataset.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/train/lr_schedule.hpp"
#include "zebra/train/trainer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("zebra_trainer_test_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A dataset repeating one short "sentence" per document: easy to memorise.
std::string write_dataset(const fs::path& dir, const std::string& name, std::int64_t n_docs) {
  const std::string path = (dir / name).string();
  TokenDatasetWriter w(path, 32, 1, 2);
  for (std::int64_t d = 0; d < n_docs; ++d) {
    std::vector<std::int32_t> doc = {5, 9, 12, 7, 3, 20, 11, 6, 14, static_cast<std::int32_t>(21 + d % 3)};
    w.add_document(doc);
  }
  w.finish();
  return path;
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 32;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.max_seq_len = 64;
  c.group_size = 2;
  c.window = 8;
  c.resolve();
  return c;
}

TrainOptions base_options(const fs::path& dir) {
  TrainOptions o;
  o.train_data = write_dataset(dir, "train.bin", 200);
  o.valid_data = write_dataset(dir, "valid.bin", 20);
  o.config = small_config();
  o.out_dir = (dir / "run").string();
  o.steps = 60;
  o.batch_size = 4;
  o.seq_len = 24;
  o.lr = LrSchedule{3e-3, 3e-4, 5, 0};
  o.optimizer.adamw.weight_decay = 0.0;
  o.eval_every = 20;
  o.eval_batches = 4;
  o.log_every = 0;
  o.plot = false;
  return o;
}

std::vector<double> train_losses(const std::string& metrics_path) {
  std::vector<double> out;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

// The text is a fixed cycle of 12 tokens except one of three final tokens per document: a model that
// learned it predicts 11 of every 12 positions almost surely and the 12th with p ~ 1/3, so the
// held-out loss bound ln(3)/12 + margin. We require < 0.5 nats/token, from ln(32) = 3.47 at the start.
TEST(Trainer, TinyModelOverfitsARepeatedText) {
  fs::path dir = temp_dir("overfit");
  TrainOptions o = base_options(dir);
  o.steps = 150;
  TrainResult r = run_training(o);
  EXPECT_GT(r.first_eval_loss, 3.0);
  EXPECT_LT(r.last_eval_loss, 0.5);
  EXPECT_TRUE(fs::exists(r.final_checkpoint));
  fs::remove_all(dir);
}

TEST(Trainer, ResumeIsBitIdentical) {
  fs::path dir = temp_dir("resume");
  TrainOptions straight = base_options(dir);
  straight.out_dir = (dir / "straight").string();
  straight.steps = 30;
  run_training(straight);

  TrainOptions first = straight;
  first.out_dir = (dir / "split").string();
  first.steps = 30;
  first.save_every = 12;
  first.keep_checkpoints = 0;
  first.time_limit_s = 0;
  // Run to step 12's checkpoint, then pretend the run died: delete later checkpoints.
  run_training(first);
  const auto written = list_checkpoints(first.out_dir);
  ASSERT_EQ(written.size(), 3u);  // steps 12, 24 and the final 30
  for (const auto& ck : written) {
    if (ck.find(checkpoint_name(12)) == std::string::npos) fs::remove_all(ck);
  }
  ASSERT_EQ(list_checkpoints(first.out_dir).size(), 1u);  // only step 12's is left to resume from
  TrainOptions resumed = first;
  resumed.config.reset();
  resumed.resume_from = first.out_dir;
  run_training(resumed);

  const auto a = train_losses(straight.out_dir + "/metrics.jsonl");
  const auto b = train_losses(first.out_dir + "/metrics.jsonl");
  ASSERT_EQ(a.size(), 30u);
  ASSERT_EQ(b.size(), 30u);  // the interrupted run's later records were dropped on resume
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i + 1;
  // Final weights identical too.
  ParameterSet<float> pa = load_model_dir(list_checkpoints(straight.out_dir).back());
  ParameterSet<float> pb = load_model_dir(list_checkpoints(first.out_dir).back());
  ASSERT_EQ(pa.data.size(), pb.data.size());
  EXPECT_EQ(0, std::memcmp(pa.data.data(), pb.data.data(), pa.data.size() * sizeof(float)));
  fs::remove_all(dir);
}

TEST(Trainer, TruncatedCheckpointIsRefusedNamingTheFile) {
  fs::path dir = temp_dir("truncated");
  TrainOptions o = base_options(dir);
  o.steps = 2;
  TrainResult r = run_training(o);
  for (const char* name : {"model.safetensors", "trainer_state.safetensors", "trainer_state.json", "config.json"}) {
    const fs::path file = fs::path(r.final_checkpoint) / name;
    const std::string original = read_file(file.string());
    for (double frac : {0.0, 0.003, 0.5, 0.97}) {
      const std::size_t cut = static_cast<std::size_t>(frac * static_cast<double>(original.size()));
      if (cut == original.size()) continue;
      write_file_atomic(file.string(), original.substr(0, cut));
      try {
        load_checkpoint(r.final_checkpoint);
        ADD_FAILURE() << name << " cut at " << cut << " was accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      }
    }
    write_file_atomic(file.string(), original);
    EXPECT_NO_THROW(load_checkpoint(r.final_checkpoint));
  }
  fs::remove_all(dir);
}

TEST(Trainer, NanLossStopsWithAMessageAndKeepsTheLastCheckpoint) {
  fs::path dir = temp_dir("nan");
  TrainOptions o = base_options(dir);
  o.steps = 40;
  o.save_every = 1;                     // a checkpoint after step 1, whose loss is the finite one of the init
  o.lr = LrSchedule{1e30, 1e30, 0, 0};  // diverges within a few steps
  o.optimizer.grad_clip = 0;
  try {
    run_training(o);
    FAIL() << "training with lr 1e30 did not stop";
  } catch (const Error& e) {
    // Either the loss became non-finite, or the gradient did first (then the update was refused).
    EXPECT_NE(std::string(e.what()).find("training stopped: the "), std::string::npos) << e.what();
  }
  // At least the checkpoint of step 1, or the loop below would check nothing.
  const auto checkpoints = list_checkpoints(o.out_dir);
  ASSERT_GT(checkpoints.size(), 0u);
  for (const auto& ck : checkpoints) EXPECT_NO_THROW(load_checkpoint(ck)) << ck;
  fs::remove_all(dir);
}

// trainer_state.json is untrusted: counters the trainer would overflow (it adds to both every step) and values
// nested deep enough to overflow the stack of the JSON library's copy are refused, naming the file and field.
TEST(Trainer, HostileTrainerStateIsRefusedNamingTheField) {
  fs::path dir = temp_dir("hostile_state");
  TrainOptions o = base_options(dir);
  o.steps = 1;
  TrainResult r = run_training(o);
  const std::string path = (fs::path(r.final_checkpoint) / "trainer_state.json").string();
  const std::string original = read_file(path);
  const nlohmann::json good = nlohmann::json::parse(original);
  auto expect_refused = [&](const std::string& text, const std::vector<std::string>& parts) {
    write_file_atomic(path, text);
    try {
      load_checkpoint(r.final_checkpoint);
      ADD_FAILURE() << "accepted " << text.substr(0, 200);
    } catch (const Error& e) {
      for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  for (const char* key : {"tokens_seen", "step"}) {
    for (const std::int64_t bad : {std::numeric_limits<std::int64_t>::max(), std::int64_t{-1}}) {
      nlohmann::json j = good;
      j[key] = bad;
      expect_refused(j.dump(), {"trainer_state.json", std::string("field '") + key + "'", std::to_string(bad), "2^53"});
    }
  }
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string text = good.dump();
  text.insert(text.size() - 1, ",\"run\":" + deep);
  expect_refused(text, {"trainer_state.json", "field 'run'", "more than 64 levels"});
  write_file_atomic(path, original);
  EXPECT_NO_THROW(load_checkpoint(r.final_checkpoint));
  fs::remove_all(dir);
}

TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(1), 0.1);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);  // halfway through the cosine
  EXPECT_DOUBLE_EQ(s.at(110), 0.1);
  EXPECT_DOUBLE_EQ(s.at(500), 0.1);
}

TEST(Checkpoint, KeepsTheLastK) {
  fs::path dir = temp_dir("keep");
  TrainOptions o = base_options(dir);
  o.steps = 10;
  o.save_every = 2;
  o.keep_checkpoints = 2;
  run_training(o);
  auto all = list_checkpoints(o.out_dir);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all[0].find(checkpoint_name(8)), std::string::npos);
  EXPECT_NE(all[1].find(checkpoint_name(10)), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zebra
