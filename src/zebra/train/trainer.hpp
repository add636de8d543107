// The training loop: pretraining and continued training (LCAT) on token datasets.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "zebra/data/mixture_batcher.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/communicator.hpp"
#include "zebra/train/lr_schedule.hpp"
#include "zebra/train/optimizer.hpp"

namespace zebra {

// How the ranks of a distributed run share a step (docs/distributed.md).
enum class ParallelMode {
  kData,     // each rank its own micro-batches: a step is ranks x grad_accum micro-batches
  kContext,  // each rank a slice of every sequence (seq_len a multiple of the ranks; train/context_parallel.hpp)
};

struct TrainOptions {
  // Data: token datasets written by `zebra prepare`; the tokenizer file is copied into checkpoints.
  std::string train_data;
  std::string valid_data;      // optional
  std::string tokenizer_file;  // optional
  // Model: a fresh config, or a model directory to continue from (LCAT), or a checkpoint to resume.
  std::optional<ModelConfig> config;
  std::string init_from;    // any model load_any_model reads (directory, GGUF, llama2.c)
  std::string resume_from;  // checkpoint directory or run directory
  std::uint64_t seed = 1;
  double init_std = 0.02;

  std::string out_dir;
  std::int64_t steps = 1000;
  std::int64_t batch_size = 8;  // sequences per micro-batch
  std::int64_t seq_len = 256;
  std::int64_t grad_accum = 1;  // micro-batches per optimizer step (train/step.hpp: one mean over all)
  BatchMode batch_mode = BatchMode::kRandom;
  MixtureOptions mixture;  // LCAT: a share of micro-batches of short sequences (data/mixture_batcher.hpp)
  bool doc_mask = false;   // mask attention across document boundaries
  // Instruction data (LIT): the training data must carry a loss mask (zebra prepare --chat), whose context
  // tokens become ignored targets; the step loss is the mean over the step's answer tokens (train/step.hpp).
  bool chat = false;
  bool one_document_per_row = false;  // one conversation per sequence, the rest of a row unscored
  LrSchedule lr{3e-4, 3e-5, 100, 0};  // total_steps 0: set to `steps`
  OptimizerOptions optimizer;
  bool recompute = false;
  bool bf16_matmul = false;  // RunOptions::bf16_matmul: bf16-rounded matrix products, fp32 accumulation

  // Distributed training: the ranks of *comm (null or one rank: this process alone). Every rank draws the same
  // micro-batches; rank 0 alone writes metrics and checkpoints. A checkpoint resumes with any number of ranks.
  Communicator* comm = nullptr;
  ParallelMode parallel = ParallelMode::kData;
  bool shard_optimizer = false;  // ZeRO stage 1: each rank keeps the AdamW moments of its shard only

  std::int64_t eval_every = 100;  // 0 = only at start and end
  std::int64_t eval_batches = 8;
  std::int64_t save_every = 0;  // 0 = only at the end
  std::int64_t keep_checkpoints = 2;
  std::int64_t log_every = 10;
  double time_limit_s = 0;  // > 0: stop (and checkpoint) after this many seconds
  bool plot = true;         // render loss.png with gnuplot at the end, when available
};

struct TrainResult {
  std::int64_t steps = 0;
  std::int64_t tokens = 0;
  double first_eval_loss = 0;  // NaN when there is no validation data
  double last_eval_loss = 0;
  double last_train_loss = 0;
  // Mean training loss per sequence kind over the whole run (NaN for a kind never drawn) and the micro-batches
  // of each kind drawn.
  double long_loss = 0, short_loss = 0;
  std::int64_t long_micro_batches = 0, short_micro_batches = 0;
  double tokens_per_s = 0;
  bool interrupted = false;
  std::string final_checkpoint;
};

// Set from a signal handler (Ctrl-C): the loop checkpoints and returns.
std::atomic<bool>& training_stop_requested();
void install_stop_signal_handler();

TrainResult run_training(const TrainOptions& options);

// Mean loss per token over `n_batches` sequential batches from the start of `data` (n_batches <= 0:
// the whole dataset). With a communicator of several ranks the batches are shared out (data parallel: every
// ranks-th batch; context: a slice of each, for a model with sharded attention) and the sums added up, so that
// every rank returns the whole result.
LossResult evaluate_loss(Transformer<float>& model, const TokenDataset& data, std::int64_t batch_size,
                         std::int64_t seq_len, std::int64_t n_batches, bool doc_mask, Communicator* comm = nullptr,
                         ParallelMode parallel = ParallelMode::kData);

}  // namespace zebra
