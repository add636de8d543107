#include "zebra/train/trainer.hpp"

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <vector>

#include "zebra/data/token_dataset.hpp"
#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/train/checkpoint.hpp"
#include "zebra/train/context_parallel.hpp"
#include "zebra/train/data_parallel.hpp"
#include "zebra/train/metrics.hpp"
#include "zebra/train/step.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/log.hpp"
#include "zebra/util/memory.hpp"
#include "zebra/util/threads.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

namespace fs = std::filesystem;

std::atomic<bool>& training_stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {

void on_stop_signal(int) { training_stop_requested().store(true); }

BatchView view_of(const Batch& b, bool doc_mask) {
  return BatchView{b.batch_size, b.seq_len, b.tokens.data(), b.targets.data(), doc_mask ? b.doc_start.data() : nullptr};
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long long t = static_cast<long long>(s);
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

nlohmann::json run_record(const TrainOptions& o, const ModelConfig& c, int ranks) {
  return nlohmann::json{{"train_data", o.train_data},
                        {"valid_data", o.valid_data},
                        {"steps", o.steps},
                        {"batch_size", o.batch_size},
                        {"seq_len", o.seq_len},
                        {"grad_accum", o.grad_accum},
                        {"doc_mask", o.doc_mask},
                        {"chat", o.chat},
                        {"one_document_per_row", o.one_document_per_row},
                        {"max_lr", o.lr.max_lr},
                        {"min_lr", o.lr.min_lr},
                        {"warmup_steps", o.lr.warmup_steps},
                        {"weight_decay", o.optimizer.adamw.weight_decay},
                        {"grad_clip", o.optimizer.grad_clip},
                        {"seed", o.seed},
                        {"short_fraction", o.mixture.short_fraction},
                        {"short_seq_len", o.mixture.short_seq_len},
                        {"pattern", c.pattern_string()},
                        {"window", c.window},
                        {"ranks", ranks},
                        {"parallel", o.parallel == ParallelMode::kContext ? "context" : "data"},
                        {"shard_optimizer", o.shard_optimizer},
                        {"batch_mode", o.batch_mode == BatchMode::kRandom     ? "random"
                                       : o.batch_mode == BatchMode::kDocument ? "document"
                                                                              : "sequential"}};
}

}  // namespace

void install_stop_signal_handler() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

LossResult evaluate_loss(Transformer<float>& model, const TokenDataset& data, std::int64_t batch_size,
                         std::int64_t seq_len, std::int64_t n_batches, bool doc_mask, Communicator* comm,
                         ParallelMode parallel) {
  const int ranks = comm != nullptr ? comm->size() : 1, rank = comm != nullptr ? comm->rank() : 0;
  const bool context = ranks > 1 && parallel == ParallelMode::kContext;
  Batcher batcher(data, batch_size, seq_len, BatchMode::kSequential);
  const std::int64_t whole = (batcher.n_windows() + batch_size - 1) / batch_size;
  const std::int64_t count = n_batches > 0 ? std::min(n_batches, whole) : whole;
  double sums[2] = {0.0, 0.0};  // loss sum, scored targets
  Batch b, slice;
  for (std::int64_t i = 0; i < count; ++i) {
    batcher.next(b);
    if (!context && i % ranks != rank) continue;
    const LossResult r =
        model.forward_loss(context ? slice_columns(b, rank, ranks, doc_mask, slice) : view_of(b, doc_mask));
    sums[0] += r.loss_sum;
    sums[1] += static_cast<double>(r.n_valid);
  }
  if (comm != nullptr) comm->sum(sums, 2);
  return LossResult{sums[0], static_cast<std::int64_t>(sums[1])};
}

namespace {

// The memory plan: parameters, gradients and two AdamW moments (4 float buffers), activations and backward
// scratch for one micro-batch. Printed, and refused up front (before the optimizer allocates its moments) when
// it cannot fit, with what --recompute would need.
//
// Distributed: the plan of one rank. With a sharded optimizer a rank keeps the moments of 1 / ranks of the
// parameters (plus the reduce-scatter's receive pieces); context parallelism holds the activations of seq_len /
// ranks positions and the exchange buffers of context_parallel.hpp.
void check_memory_plan(const ModelConfig& config, std::int64_t n_params, const TrainOptions& o, const RunOptions& run,
                       int ranks, int ranks_here, bool context) {
  const double mib = 1 << 20;
  const std::int64_t moments = o.shard_optimizer ? 8 * ((n_params + ranks - 1) / ranks) : 8 * n_params;
  const std::int64_t reduce_scratch = ranks > 1 ? 4 * std::min<std::int64_t>(n_params, 1 << 20) * ranks : 0;
  const auto state_bytes = 8 * n_params + moments + reduce_scratch;
  const std::int64_t rows = context ? o.seq_len / ranks : o.seq_len;
  auto act_bytes = static_cast<std::int64_t>(Transformer<float>::activation_bytes(config, o.batch_size, rows, run));
  if (context) {
    act_bytes += static_cast<std::int64_t>(ContextParallelAttention<float>::scratch_bytes(config, o.batch_size, rows));
  }
  const std::int64_t need = state_bytes + act_bytes;
  // The ranks on this machine share its memory.
  const std::int64_t available = available_memory_bytes() / ranks_here;
  log_info("memory plan", ranks > 1 ? " per rank" : "", ": parameters, gradients and AdamW moments",
           o.shard_optimizer ? " (moments sharded)" : "", " ", static_cast<double>(state_bytes) / mib,
           " MiB; activations ", static_cast<double>(act_bytes) / mib, " MiB", o.recompute ? " (recompute)" : "",
           context ? " (a slice of each sequence)" : "", "; total ", static_cast<double>(need) / mib, " MiB of ",
           static_cast<double>(available) / mib, " MiB available");
  if (available <= 0 || need <= available) return;
  std::string hint;
  if (!o.recompute) {
    RunOptions with_recompute = run;
    with_recompute.recompute = true;
    const auto bytes =
        static_cast<std::int64_t>(Transformer<float>::activation_bytes(config, o.batch_size, rows, with_recompute));
    hint = str_cat(" --recompute would need ", static_cast<double>(state_bytes + bytes) / mib, " MiB;");
  }
  fail("train: a step needs ", static_cast<double>(need) / mib, " MiB but only ", static_cast<double>(available) / mib,
       " MiB are available;", hint, " or lower --batch-size (", o.batch_size,
       ") and raise --grad-accum to keep the tokens per step");
}

// What each rank sent in the first step of a context-parallel run, by layer type: the measured bytes behind
// docs/distributed.md, logged by rank 0.
void log_step_traffic(Communicator& comm, const ContextParallelAttention<float>& attention, const ModelConfig& c) {
  std::vector<double> bytes(2 * static_cast<std::size_t>(comm.size()), 0.0);  // per rank: local, global layers
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const LayerTraffic& t = attention.traffic()[static_cast<std::size_t>(l)];
    bytes[2 * static_cast<std::size_t>(comm.rank()) + (c.is_global(l) ? 1 : 0)] +=
        static_cast<double>(t.forward_bytes + t.backward_bytes);
  }
  comm.sum(bytes.data(), bytes.size());
  std::string line;
  for (int r = 0; r < comm.size(); ++r) {
    const auto i = 2 * static_cast<std::size_t>(r);
    line += str_cat(r > 0 ? "; " : "", "rank ", r, " ", (bytes[i] + bytes[i + 1]) / (1 << 20), " MiB (local layers ",
                    bytes[i] / (1 << 20), ", global ", bytes[i + 1] / (1 << 20), ")");
  }
  log_info("context parallel, bytes sent in step 1: ", line);
}

}  // namespace

TrainResult run_training(const TrainOptions& o) {
  ZEBRA_CHECK(!o.out_dir.empty(), "train: an output directory is required");
  ZEBRA_CHECK(o.steps >= 1, "train: steps must be >= 1, got ", o.steps);
  ZEBRA_CHECK(o.batch_size >= 1 && o.seq_len >= 1 && o.grad_accum >= 1,
              "train: batch_size, seq_len and grad_accum must be >= 1");
  Communicator alone;
  Communicator& comm = o.comm != nullptr ? *o.comm : alone;
  const int ranks = comm.size();
  const bool root = comm.rank() == 0;
  const bool context = ranks > 1 && o.parallel == ParallelMode::kContext;
  // Micro-batches per step across all ranks: data parallelism gives each rank grad_accum of its own.
  const std::int64_t step_micro = o.grad_accum * (context ? 1 : ranks);
  if (context) {
    ZEBRA_CHECK(o.seq_len % ranks == 0, "train: context parallelism needs --seq-len (", o.seq_len,
                ") to be a multiple of the number of ranks (", ranks, ")");
    ZEBRA_CHECK(o.mixture.short_fraction <= 0 || o.mixture.short_seq_len % ranks == 0,
                "train: context parallelism needs --short-seq-len (", o.mixture.short_seq_len,
                ") to be a multiple of the number of ranks (", ranks, ")");
  }
  if (root) fs::create_directories(o.out_dir);

  TokenDataset train = TokenDataset::open(o.train_data);
  std::optional<TokenDataset> valid;
  if (!o.valid_data.empty()) valid = TokenDataset::open(o.valid_data);
  ZEBRA_CHECK(train.n_tokens() > o.seq_len, "train: '", o.train_data, "' holds ", train.n_tokens(),
              " tokens, fewer than seq_len + 1 = ", o.seq_len + 1);
  if (o.chat) {
    ZEBRA_CHECK(train.has_loss_mask(),
                "train: --chat-data needs instruction data with a loss mask (zebra prepare "
                "--chat writes it); '",
                o.train_data, "' has none");
  }
  if (train.has_loss_mask()) {
    log_info("training data '", o.train_data, "': loss on ", train.n_scored(), " of ", train.n_tokens(),
             " tokens (the answers), ", train.n_docs(), " conversations");
  }

  // Model, optimizer state and data position: from a checkpoint, a model directory, or fresh.
  std::optional<Checkpoint> ck;
  ParameterSet<float> params;
  if (!o.resume_from.empty()) {
    const std::string dir = resolve_checkpoint(o.resume_from);
    log_info("resuming from ", dir);
    ck = load_checkpoint(dir);
    params = std::move(ck->params);
  } else if (!o.init_from.empty()) {
    // Any model zebra loads; quantized or 16-bit weights arrive as fp32 master weights.
    params = load_any_model(o.init_from).params;
    log_info("continuing from ", o.init_from, " (", params.layout.total, " parameters, now fp32)");
    if (o.config) {
      // LCAT: the same weights re-laid with the requested pattern / positions / RoPE scaling.
      ModelConfig c = *o.config;
      ZEBRA_CHECK(make_param_layout(c).total == params.layout.total,
                  "train: --init model and the requested config have different parameter layouts");
      ParameterSet<float> relaid(c);
      relaid.data = params.data;
      relaid.views = make_views(relaid.config, relaid.layout, relaid.data.data());
      params = std::move(relaid);
    }
  } else {
    ZEBRA_CHECK(o.config.has_value(), "train: give a model config, --init or --resume");
    params = ParameterSet<float>(*o.config);
    init_parameters(params, o.seed, o.init_std);
  }
  ModelConfig config = params.config;
  config.resolve();
  ZEBRA_CHECK(config.vocab_size >= train.vocab_size(), "train: the model's vocab_size ", config.vocab_size,
              " is smaller than the dataset's ", train.vocab_size());

  const RunOptions run_options{o.recompute, 256, o.bf16_matmul};
  check_memory_plan(config, static_cast<std::int64_t>(params.layout.total), o, run_options, ranks, comm.local_size(),
                    context);
  Transformer<float> model(std::move(params), run_options);
  ContextParallelAttention<float> sharded_attention(comm, config.n_layers);
  if (context) model.set_sharded_attention(&sharded_attention);
  const std::size_t n_params = model.params().layout.total;
  const ParamRange shard = o.shard_optimizer ? shard_of(n_params, comm.rank(), ranks) : ParamRange{0, n_params};
  Optimizer optimizer(model.params().layout, o.optimizer, shard);
  MixtureBatcher batcher(train, o.batch_size, o.seq_len, o.batch_mode, o.mixture, o.seed);
  batcher.set_one_document_per_row(o.one_document_per_row);
  TrainerState state;
  state.run = run_record(o, config, ranks);
  if (ck) {
    ZEBRA_CHECK(ck->m.size() == model.params().layout.total, "checkpoint moments do not match the model");
    // The checkpoint holds every moment (whatever the ranks that wrote it); this rank keeps its shard.
    std::copy(ck->m.data() + shard.begin, ck->m.data() + shard.end, optimizer.m().data());
    std::copy(ck->v.data() + shard.begin, ck->v.data() + shard.end, optimizer.v().data());
    optimizer.set_steps_taken(ck->state.step);
    batcher.set_state(ck->state.batcher);
    state.step = ck->state.step;
    state.tokens_seen = ck->state.tokens_seen;
  }
  LrSchedule schedule = o.lr;
  if (schedule.total_steps <= 0) schedule.total_steps = o.steps;

  const std::int64_t tokens_per_step = o.batch_size * o.seq_len * step_micro;
  const FlopCount flops = forward_flops(config, o.seq_len);
  log_info("model: ", parameter_count(config), " parameters, pattern ", config.pattern_string(), " (window ",
           config.window, "), ", to_string(config.pos_embedding), " positions; ", num_threads(), " threads");
  log_info("training: ", o.steps, " steps of ", tokens_per_step, " tokens (", o.batch_size, " x ", o.seq_len, " x ",
           step_micro, "), ", flops.training() * static_cast<double>(tokens_per_step) / 1e9, " GFLOP per step");
  if (ranks > 1) {
    log_info("distributed: ", ranks, " ranks (", comm.local_size(), " on this machine), ",
             context ? "context parallel: each rank holds " + std::to_string(o.seq_len / ranks) +
                           " positions of every sequence"
                     : "data parallel: each rank " + std::to_string(o.grad_accum) + " micro-batches per step",
             o.shard_optimizer ? "; AdamW moments sharded" : "");
  }
  // Rank 0 writes the metrics; the others keep theirs in memory only (MetricsWriter needs a file: /dev/null).
  MetricsWriter metrics(root ? (fs::path(o.out_dir) / "metrics.jsonl").string() : std::string("/dev/null"),
                        ck ? state.step : 0);
  TrainResult result;
  result.first_eval_loss = std::numeric_limits<double>::quiet_NaN();
  result.last_eval_loss = result.first_eval_loss;
  auto run_eval = [&]() {
    if (!valid) return;
    LossResult r = evaluate_loss(model, *valid, o.batch_size, o.seq_len, o.eval_batches, o.doc_mask, &comm, o.parallel);
    const double loss = r.mean();
    if (std::isnan(result.first_eval_loss)) result.first_eval_loss = loss;
    result.last_eval_loss = loss;
    metrics.write(
        {{"step", state.step}, {"tokens", state.tokens_seen}, {"eval_loss", loss}, {"eval_tokens", r.n_valid}});
    log_info("step ", state.step, ": held-out loss ", loss, " nats/token (", r.n_valid, " tokens)");
  };
  std::string last_checkpoint;
  auto save = [&]() {
    TrainerState s = state;
    s.batcher = batcher.state();
    const std::string dir = (fs::path(o.out_dir) / checkpoint_name(state.step)).string();
    last_checkpoint = dir;
    if (o.shard_optimizer && ranks > 1) {
      // The moments come together on rank 0 for the one checkpoint format.
      AlignedBuffer<float> m(root ? n_params : 0), v(root ? n_params : 0);
      gather_to_root(comm, optimizer.m().data(), m.data(), n_params);
      gather_to_root(comm, optimizer.v().data(), v.data(), n_params);
      if (root) save_checkpoint(dir, model.params(), m, v, s, o.tokenizer_file);
    } else if (root) {
      save_checkpoint(dir, model.params(), optimizer.m(), optimizer.v(), s, o.tokenizer_file);
    }
    if (root) prune_checkpoints(o.out_dir, o.keep_checkpoints);
  };

  if (!ck) run_eval();
  training_stop_requested().store(false);
  sharded_attention.reset_traffic();
  const bool tty = root && isatty(STDERR_FILENO) != 0;
  Timer timer;
  const std::int64_t start_step = state.step;
  // All micro-batches of a step are drawn first: the step's mean runs over all their scored targets.
  // Every rank draws all of them; rank r computes on micro-batches [r grad_accum, (r + 1) grad_accum) (data
  // parallel) or on its slice of each (context parallel).
  std::vector<Batch> micro(static_cast<std::size_t>(step_micro));
  std::vector<BatchView> micro_views(micro.size());
  std::vector<SequenceKind> kinds(micro.size());
  const std::size_t own_first = context ? 0 : static_cast<std::size_t>(comm.rank() * o.grad_accum);
  const auto own_count = static_cast<std::size_t>(o.grad_accum);
  std::vector<Batch> slices(context ? own_count : 0);
  std::vector<BatchView> own_views(own_count);
  std::vector<LossResult> micro_losses(own_count);
  const double comm_start = comm.wait_seconds();
  double window_loss = 0;
  std::int64_t window_count = 0;
  LossResult window_kind[2], run_kind[2];  // indexed by SequenceKind: this log window's, the whole run's
  std::int64_t run_kind_batches[2] = {0, 0};
  while (state.step < o.steps) {
    for (std::size_t i = 0; i < micro.size(); ++i) {
      kinds[i] = batcher.next(micro[i]);
      micro_views[i] = view_of(micro[i], o.doc_mask);
    }
    for (std::size_t i = 0; i < own_count; ++i) {
      own_views[i] =
          context ? slice_columns(micro[i], comm.rank(), ranks, o.doc_mask, slices[i]) : micro_views[own_first + i];
    }
    // The mean runs over the scored targets of the whole step, every rank's part included.
    const std::int64_t mean_over = std::max<std::int64_t>(count_scored_targets(micro_views), 1);
    step_gradients(model, own_views, micro_losses, mean_over);
    // Loss sums and counts per sequence kind, added over the ranks: {long sum, long count, short sum, short count}.
    double kind_sums[4] = {0, 0, 0, 0};
    for (std::size_t i = 0; i < own_count; ++i) {
      const auto k = static_cast<std::size_t>(kinds[own_first + i]);
      kind_sums[2 * k] += micro_losses[i].loss_sum;
      kind_sums[2 * k + 1] += static_cast<double>(micro_losses[i].n_valid);
    }
    comm.sum(kind_sums, 4);
    LossResult step_kind[2];
    for (std::size_t k = 0; k < 2; ++k) {
      step_kind[k] = LossResult{kind_sums[2 * k], static_cast<std::int64_t>(kind_sums[2 * k + 1])};
      for (LossResult* r : {&window_kind[k], &run_kind[k]}) {
        r->loss_sum += step_kind[k].loss_sum;
        r->n_valid += step_kind[k].n_valid;
      }
    }
    for (SequenceKind k : kinds) ++run_kind_batches[static_cast<std::size_t>(k)];
    const double loss =
        LossResult{step_kind[0].loss_sum + step_kind[1].loss_sum, step_kind[0].n_valid + step_kind[1].n_valid}.mean();
    if (!std::isfinite(loss)) {
      if (tty) std::fputc('\n', stderr);
      fail("training stopped: the loss became ", loss, " at step ", state.step + 1,
           last_checkpoint.empty() ? std::string(" (no checkpoint written in this run)")
                                   : " (the last good checkpoint, " + last_checkpoint + ", is intact)",
           "; lower the learning rate or check the data");
    }
    const double lr = schedule.at(state.step + 1);
    const double grad_norm =
        ranks > 1 ? distributed_update(comm, model, optimizer, lr) : apply_step_update(model, optimizer, lr);
    ++state.step;
    if (context && state.step == start_step + 1) log_step_traffic(comm, sharded_attention, config);
    state.tokens_seen += tokens_per_step;
    result.last_train_loss = loss;
    window_loss += loss;
    ++window_count;

    const double elapsed = timer.seconds();
    const double tok_s = static_cast<double>((state.step - start_step) * tokens_per_step) / elapsed;
    metrics.write({{"step", state.step},
                   {"tokens", state.tokens_seen},
                   {"loss", loss},
                   {"lr", lr},
                   {"grad_norm", grad_norm},
                   {"tokens_per_s", tok_s},
                   {"elapsed_s", elapsed},
                   {"comm_s", comm.wait_seconds() - comm_start}});
    if (batcher.mixed()) {
      // Per-kind losses of the step, on a line of their own so that loss curves read the lines above unchanged.
      nlohmann::json kinds_line{{"step", state.step}};
      for (SequenceKind k : {SequenceKind::kLong, SequenceKind::kShort}) {
        const LossResult& r = step_kind[static_cast<std::size_t>(k)];
        if (r.n_valid > 0) kinds_line[std::string("loss_") + to_string(k)] = r.mean();
      }
      metrics.write(kinds_line);
    }
    const bool log_now = o.log_every > 0 && (state.step % o.log_every == 0 || state.step == o.steps);
    if (root && (tty || log_now)) {
      const double eta =
          elapsed / static_cast<double>(state.step - start_step) * static_cast<double>(o.steps - state.step);
      char line[256];
      std::snprintf(line, sizeof line,
                    "step %6lld/%lld  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  %.2f TFLOP/s  ETA %s",
                    static_cast<long long>(state.step), static_cast<long long>(o.steps),
                    window_loss / static_cast<double>(window_count), lr, grad_norm, tok_s,
                    tok_s * flops.training() / 1e12, format_duration(eta).c_str());
      std::string by_kind;
      if (batcher.mixed()) {
        for (SequenceKind k : {SequenceKind::kLong, SequenceKind::kShort}) {
          const LossResult& r = window_kind[static_cast<std::size_t>(k)];
          char part[48];
          if (r.n_valid > 0) {
            std::snprintf(part, sizeof part, "  %s %.4f", to_string(k), r.mean());
          } else {
            std::snprintf(part, sizeof part, "  %s -", to_string(k));
          }
          by_kind += part;
        }
      }
      if (tty) {
        std::fprintf(stderr, "\r%s%s\033[K", line, by_kind.c_str());
        if (log_now) std::fputc('\n', stderr);
      } else {
        std::fprintf(stderr, "%s%s\n", line, by_kind.c_str());
      }
      if (log_now) {
        window_loss = 0;
        window_count = 0;
        window_kind[0] = window_kind[1] = LossResult{};
      }
    }
    // Any rank's reason to stop stops them all at the same step.
    const bool stop = comm.any(training_stop_requested().load() || (o.time_limit_s > 0 && elapsed >= o.time_limit_s));
    if (o.eval_every > 0 && state.step % o.eval_every == 0 && state.step < o.steps && !stop) {
      if (tty) std::fputc('\n', stderr);
      run_eval();
    }
    if (o.save_every > 0 && state.step % o.save_every == 0 && state.step < o.steps && !stop) save();
    if (stop) {
      if (tty) std::fputc('\n', stderr);
      result.interrupted = !(o.time_limit_s > 0 && elapsed >= o.time_limit_s);
      log_info(result.interrupted ? "interrupted" : "time limit reached", " at step ", state.step,
               ": saving a checkpoint");
      break;
    }
  }
  const double elapsed = timer.seconds();
  result.steps = state.step;
  result.tokens = state.tokens_seen;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  result.long_loss = run_kind[0].n_valid > 0 ? run_kind[0].mean() : nan;
  result.short_loss = run_kind[1].n_valid > 0 ? run_kind[1].mean() : nan;
  result.long_micro_batches = run_kind_batches[0];
  result.short_micro_batches = run_kind_batches[1];
  result.tokens_per_s = static_cast<double>((state.step - start_step) * tokens_per_step) / std::max(elapsed, 1e-9);
  run_eval();
  save();
  std::vector<double> peak(static_cast<std::size_t>(ranks), 0.0);
  peak[static_cast<std::size_t>(comm.rank())] = static_cast<double>(peak_rss_bytes()) / (1 << 20);
  comm.sum(peak.data(), peak.size());
  if (ranks == 1) {
    log_info("peak resident memory ", peak[0], " MiB");
  } else {
    std::string per_rank;
    for (double p : peak) per_rank += (per_rank.empty() ? "" : ", ") + std::to_string(static_cast<long long>(p));
    log_info("peak resident memory per rank: ", per_rank, " MiB; blocked in communication ",
             comm.wait_seconds() - comm_start, " s");
  }
  result.final_checkpoint = last_checkpoint;
  if (root && o.plot && gnuplot_available()) {
    const std::string png = (fs::path(o.out_dir) / "loss.png").string();
    try {
      plot_loss_curves({metrics.path()}, {"zebra"}, png, "loss: " + o.out_dir);
      log_info("loss curve: ", png);
    } catch (const Error& e) {
      log_warn("could not plot: ", e.what());
    }
  }
  return result;
}

}  // namespace zebra
