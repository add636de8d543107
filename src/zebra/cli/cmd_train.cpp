// zebra train: pretraining from a prepared dataset, continued training from a model directory
// (LCAT: with a new layer pattern and RoPE scaling), or resuming a run.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/train/communicator.hpp"
#include "zebra/train/sample_text.hpp"
#include "zebra/train/trainer.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/log.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  TrainOptions o;
  std::string data_dir, chat_dir, chat_packing = "pack", config_path, pos, batch_mode;
  AdjustArgs adjust;  // re-laying and RoPE of the model (--init or --config)
  std::int64_t vocab_size = 0;
  double beta1 = 0.9, beta2 = 0.95;
  int threads = 0;
  std::int64_t samples = 0, sample_tokens = 60;
  std::string sample_prompt;
  bool no_plot = false;
  std::string parallel = "data";
};

void run_train(TrainArgs& a) {
  TrainOptions& o = a.o;
  if (a.threads > 0) set_num_threads(a.threads);
  if (!a.chat_dir.empty()) {
    // Instruction data: answer-only loss; conversations start rows and do not see each other.
    ZEBRA_CHECK(a.data_dir.empty(), "train: --chat-data and --data exclude each other");
    a.data_dir = a.chat_dir;
    o.chat = true;
    o.doc_mask = true;
    o.one_document_per_row = a.chat_packing == "one";
    if (a.batch_mode.empty()) a.batch_mode = "document";
  }
  if (!a.data_dir.empty()) {
    if (o.train_data.empty()) o.train_data = (fs::path(a.data_dir) / "train.bin").string();
    if (o.valid_data.empty() && fs::exists(fs::path(a.data_dir) / "valid.bin")) {
      o.valid_data = (fs::path(a.data_dir) / "valid.bin").string();
    }
    if (o.tokenizer_file.empty()) o.tokenizer_file = find_tokenizer_file(a.data_dir);
  }
  ZEBRA_CHECK(!o.train_data.empty(), "train: give --data DIR (from zebra prepare) or --train-data FILE");
  const int sources = !a.config_path.empty() + !o.init_from.empty() + !o.resume_from.empty();
  ZEBRA_CHECK(sources >= 1,
              "train: give one of --config FILE (a new model), --init MODEL (continue a model) or --resume DIR");
  ZEBRA_CHECK(!(o.init_from.size() && o.resume_from.size()), "train: --init and --resume exclude each other");
  std::optional<ModelAdjustment> adjust = adjustment_of(a.adjust);
  const bool overrides = adjust || !a.pos.empty() || a.vocab_size > 0;
  ZEBRA_CHECK(!(overrides && !o.resume_from.empty()), "train: architecture options cannot change a resumed run");
  if (!a.config_path.empty() || (!o.init_from.empty() && overrides)) {
    ModelConfig c = !a.config_path.empty() ? load_config(a.config_path) : peek_model_config(o.init_from);
    c.resolve();
    if (a.vocab_size > 0) c.vocab_size = a.vocab_size;
    if (!a.pos.empty()) c.pos_embedding = parse_pos_embedding(a.pos);
    c = apply_adjustment(c, adjust);
    o.config = c;
  }
  // The model's own tokenizer (a GGUF holds it in its metadata) is what the checkpoints keep when the data
  // came with none.
  // Under mpirun: the job's ranks (docs/distributed.md). Only rank 0 writes files and talks.
  Communicator comm = Communicator::world();
  o.comm = &comm;
  o.parallel = a.parallel == "context" ? ParallelMode::kContext : ParallelMode::kData;
  if (comm.rank() > 0) log_level() = LogLevel::kWarn;
  if (!o.init_from.empty() && o.tokenizer_file.empty()) {
    o.tokenizer_file = comm.rank() == 0 ? export_model_tokenizer(o.init_from, o.out_dir) : std::string();
  }
  o.batch_mode = a.batch_mode == "sequential" ? BatchMode::kSequential
                 : a.batch_mode == "document" ? BatchMode::kDocument
                                              : BatchMode::kRandom;
  o.optimizer.adamw.beta1 = a.beta1;
  o.optimizer.adamw.beta2 = a.beta2;
  o.plot = !a.no_plot;
  install_stop_signal_handler();
  TrainResult r = run_training(o);
  if (comm.rank() > 0) return;
  std::printf("trained %lld steps (%lld tokens) at %.0f tokens/s; final train loss %.4f\n",
              static_cast<long long>(r.steps), static_cast<long long>(r.tokens), r.tokens_per_s, r.last_train_loss);
  if (!std::isnan(r.first_eval_loss)) {
    std::printf("held-out loss: %.4f before, %.4f after (nats/token)\n", r.first_eval_loss, r.last_eval_loss);
  }
  if (r.short_micro_batches > 0) {
    std::printf("loss by sequence kind: long %.4f (%lld micro-batches), short %.4f (%lld micro-batches)\n", r.long_loss,
                static_cast<long long>(r.long_micro_batches), r.short_loss,
                static_cast<long long>(r.short_micro_batches));
  }
  std::printf("checkpoint: %s\n", r.final_checkpoint.c_str());
  if (a.samples > 0 && !o.tokenizer_file.empty()) {
    std::unique_ptr<Tokenizer> tok = load_tokenizer(o.tokenizer_file);
    const ParameterSet<float> params = load_model_dir(r.final_checkpoint);
    SamplerOptions so;
    so.temperature = 0.8;
    so.top_k = 40;
    so.top_p = 0.95;
    so.seed = o.seed;
    Sampler sampler(so);
    std::printf("samples (temperature 0.8, top-k 40, top-p 0.95):\n");
    for (std::int64_t i = 0; i < a.samples; ++i) {
      std::string text = sample_text(params, *tok, a.sample_prompt, a.sample_tokens, o.seq_len, sampler, true);
      std::printf("  %s%s\n", a.sample_prompt.c_str(), text.c_str());
    }
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  TrainOptions& o = a->o;
  CLI::App* cmd = app.add_subcommand("train", "Pretrain, continue training (LCAT) or resume a Zebra model");
  cmd->add_option("--data", a->data_dir, "directory written by zebra prepare (train.bin, valid.bin, tokenizer)");
  cmd->add_option("--chat-data", a->chat_dir,
                  "instruction tuning (LIT): a directory written by zebra prepare --chat; the loss is on the "
                  "answers only, conversations are masked from each other and start rows (--batch-mode document)");
  cmd->add_option("--chat-packing", a->chat_packing,
                  "with --chat-data: pack (conversations back to back in a row, default) or one (one per row, the "
                  "rest of the row unscored)")
      ->check(CLI::IsMember({"pack", "one"}));
  cmd->add_option("--train-data", o.train_data, "token dataset to train on");
  cmd->add_option("--valid-data", o.valid_data, "token dataset for held-out loss");
  cmd->add_option("--tokenizer", o.tokenizer_file, "tokenizer file copied into checkpoints");
  cmd->add_option("--config", a->config_path, "model config (config.json) for a new model");
  cmd->add_option("--init", o.init_from,
                  "model to continue training from (LCAT): a zebra or Hugging Face directory, a GGUF (quantized "
                  "weights become fp32) or a llama2.c file");
  cmd->add_option("--resume", o.resume_from, "checkpoint or run directory to resume");
  cmd->add_option("-o,--out", o.out_dir, "run directory (checkpoints, metrics.jsonl, loss.png)")->required();
  add_adjust_options(cmd, a->adjust, "train the model");
  cmd->add_option("--pos-embedding", a->pos, "rope, alibi, learned or none")
      ->check(CLI::IsMember({"rope", "alibi", "learned", "none"}));
  cmd->add_option("--vocab-size", a->vocab_size, "override the config's vocab_size")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", o.steps, "optimizer steps")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size,-b", o.batch_size, "sequences per micro-batch")->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len,-T", o.seq_len, "tokens per sequence")->check(CLI::PositiveNumber);
  cmd->add_option("--grad-accum", o.grad_accum, "micro-batches per step")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-mode", a->batch_mode,
                  "random (windows at random offsets), document (windows aligned to document starts: long documents "
                  "drawn whole) or sequential (default random; document with --chat-data)")
      ->check(CLI::IsMember({"random", "document", "sequential"}));
  cmd->add_flag("--doc-mask", o.doc_mask, "mask attention across document boundaries");
  cmd->add_option("--short-fraction", o.mixture.short_fraction,
                  "LCAT mixture: share of micro-batches made of short sequences (the rest are long, drawn by "
                  "--batch-mode); the loss of each kind is reported")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--short-seq-len", o.mixture.short_seq_len,
                  "length S of the short sequences (divides -T; a short micro-batch holds b * T / S of them)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", o.lr.max_lr, "peak learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--min-lr", o.lr.min_lr, "final learning rate of the cosine")->check(CLI::NonNegativeNumber);
  cmd->add_option("--warmup", o.lr.warmup_steps, "linear warmup steps")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-decay", o.optimizer.adamw.weight_decay, "decoupled weight decay")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--decay-norms", o.optimizer.decay_norms, "also decay norm gains");
  cmd->add_flag("--decay-embeddings", o.optimizer.decay_embeddings, "also decay embeddings");
  cmd->add_option("--beta1", a->beta1, "AdamW beta1")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--beta2", a->beta2, "AdamW beta2")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--clip", o.optimizer.grad_clip, "max gradient norm (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--init-std", o.init_std, "std of the initial weights")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o.seed, "seed for initialisation and data order");
  cmd->add_option("--eval-every", o.eval_every, "steps between held-out evaluations (0 = start and end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-batches", o.eval_batches, "batches per evaluation (0 = the whole validation set)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--save-every", o.save_every, "steps between checkpoints (0 = at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep", o.keep_checkpoints, "checkpoints to keep (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--log-every", o.log_every, "steps between progress lines")->check(CLI::NonNegativeNumber);
  cmd->add_option("--time-limit", o.time_limit_s, "stop and checkpoint after this many seconds")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--recompute", o.recompute, "recompute each layer in backward (less memory)");
  cmd->add_flag("--bf16", o.bf16_matmul,
                "matrix products on bfloat16-rounded inputs with fp32 accumulation (docs/performance.md)");
  cmd->add_option("--threads", a->threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  cmd->add_option("--samples", a->samples, "print this many sampled lines at the end")->check(CLI::NonNegativeNumber);
  cmd->add_option("--sample-tokens", a->sample_tokens, "tokens per sampled line")->check(CLI::PositiveNumber);
  cmd->add_option("--sample-prompt", a->sample_prompt, "prompt for the samples");
  cmd->add_flag("--no-plot", a->no_plot, "do not render loss.png");
  cmd->add_option("--parallel", a->parallel,
                  "under mpirun: data (each rank its own micro-batches) or context (each rank a slice of every "
                  "sequence)")
      ->check(CLI::IsMember({"data", "context"}));
  cmd->add_flag("--shard-optimizer", o.shard_optimizer,
                "under mpirun: each rank keeps the AdamW moments of its shard of the parameters only (ZeRO-1)");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace zebra
