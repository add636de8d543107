#include "zebra/eval/perplexity.hpp"

#include <algorithm>
#include <cmath>

#include "zebra/ops/cross_entropy.hpp"
#include "zebra/ops/embedding.hpp"
#include "zebra/ops/weight.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

double PerplexityResult::ppl() const { return std::exp(mean_loss()); }

double PerplexityResult::mean_loss_stderr() const {
  const std::size_t n = window_loss.size();
  if (n < 2) return 0.0;
  double mean = 0.0;
  for (double x : window_loss) mean += x;
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (double x : window_loss) var += (x - mean) * (x - mean);
  var /= static_cast<double>(n - 1);
  return std::sqrt(var / static_cast<double>(n));
}

namespace {

// The loss of every row of the model's last forward_hidden() that has a target (targets < 0 are skipped):
// the lm head in chunks of `chunk` rows as Transformer::forward_loss runs it (the same products, so the same
// logits), then the cross-entropy one row at a time so each row's loss is known. row_loss[T] is written for
// rows with a target. Returns the number of rows scored.
std::int64_t row_losses(const Transformer<float>& model, std::span<const std::int32_t> targets, std::int64_t chunk,
                        std::vector<float>& logits, std::span<double> row_loss) {
  const ModelConfig& c = model.config();
  const std::int64_t n = static_cast<std::int64_t>(targets.size()), d = c.d_model, vocab = c.vocab_size;
  chunk = std::max<std::int64_t>(1, std::min(chunk, n));
  logits.resize(static_cast<std::size_t>(chunk * vocab));
  std::int64_t n_valid = 0;
  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, n - r0);
    const std::int32_t* t = targets.data() + r0;
    if (std::none_of(t, t + rows, [](std::int32_t x) { return x >= 0; })) continue;
    weight_matmul(logits.data(), vocab, model.final_hidden() + r0 * d, rows, model.weights().lm_head);
    for (std::int64_t r = 0; r < rows; ++r) {
      if (t[r] < 0) continue;
      ZEBRA_CHECK(t[r] < vocab, "perplexity: token ", t[r], " is outside the model's vocabulary of ", vocab);
      row_loss[static_cast<std::size_t>(r0 + r)] =
          cross_entropy_forward(logits.data() + r * vocab, t + r, 1, vocab, &n_valid);
    }
  }
  return n_valid;
}

}  // namespace

PerplexityResult evaluate_perplexity(Transformer<float>& model, std::span<const std::int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress) {
  const ModelConfig& c = model.config();
  const std::int64_t ctx = options.ctx, stride = options.stride;
  ZEBRA_CHECK(ctx >= 2, "perplexity: ctx must be >= 2, got ", ctx);
  ZEBRA_CHECK(options.score_from >= 0 && options.score_from < ctx - 1, "perplexity: score_from must lie in [0, ",
              ctx - 1, ") for ctx ", ctx, ", got ", options.score_from);
  ZEBRA_CHECK(stride >= 0 && stride <= ctx, "perplexity: stride must lie in [1, ctx = ", ctx,
              "] (0 = non-overlapping windows), got ", stride);
  ZEBRA_CHECK(stride == 0 || options.score_from == 0,
              "perplexity: score_from must be 0 with a stride (the stride decides what is scored), got ",
              options.score_from);
  ZEBRA_CHECK(options.max_tokens >= 0, "perplexity: max_tokens must be >= 0, got ", options.max_tokens);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(ctx <= c.max_seq_len, "perplexity: ctx ", ctx, " exceeds the model's learned position table (",
                c.max_seq_len, ")");
  }
  std::int64_t n = static_cast<std::int64_t>(tokens.size());
  if (options.max_tokens > 0) n = std::min(n, options.max_tokens);
  ZEBRA_CHECK(n >= ctx, "perplexity: ", n, " tokens do not fill one window of ", ctx, " tokens");
  // Without a stride, windows step by ctx and score from score_from; with one, they step by S, and every
  // window after the first scores its last min(S, ctx - 1) predictions.
  const std::int64_t step = stride > 0 ? stride : ctx;
  const std::int64_t n_windows = stride > 0 ? (n - ctx) / stride + 1 : n / ctx;
  const std::int64_t later_from = stride > 0 ? ctx - 1 - std::min(stride, ctx - 1) : options.score_from;

  PerplexityResult result;
  result.n_windows = n_windows;
  result.n_tokens = (n_windows - 1) * step + ctx;
  result.n_forward = n_windows * ctx;
  result.position_loss_sum.assign(static_cast<std::size_t>(ctx), 0.0);
  result.position_count.assign(static_cast<std::size_t>(ctx), 0);
  Timer timer;
  // One window per forward pass: each window's loss is then known (for the standard error), and a
  // window of ctx rows already makes the projections large GEMMs.
  std::vector<std::int32_t> input(static_cast<std::size_t>(ctx)), target(static_cast<std::size_t>(ctx));
  std::vector<double> row_loss(static_cast<std::size_t>(ctx));
  std::vector<float> logits;
  for (std::int64_t w = 0; w < n_windows; ++w) {
    const std::int32_t* src = tokens.data() + w * step;
    std::copy(src, src + ctx, input.begin());
    if (options.bos_first) input[0] = options.bos_id;
    std::fill(target.begin(), target.end(), -1);
    const std::int64_t from = stride > 0 && w == 0 ? 0 : later_from;
    for (std::int64_t j = from; j < ctx - 1; ++j) target[static_cast<std::size_t>(j)] = src[j + 1];
    model.forward_hidden(BatchView{1, ctx, input.data(), target.data(), nullptr});
    const std::int64_t scored = row_losses(model, target, model.options().loss_chunk, logits, row_loss);
    double window_sum = 0.0;
    for (std::int64_t j = from; j < ctx - 1; ++j) {
      const double l = row_loss[static_cast<std::size_t>(j)];
      window_sum += l;
      result.position_loss_sum[static_cast<std::size_t>(j + 1)] += l;
      result.position_count[static_cast<std::size_t>(j + 1)] += 1;
    }
    result.loss_sum += window_sum;
    result.n_scored += scored;
    result.window_loss.push_back(window_sum / static_cast<double>(std::max<std::int64_t>(scored, 1)));
    if (progress) progress(w + 1, n_windows);
  }
  result.seconds = timer.seconds();
  return result;
}

std::vector<double> evaluate_token_losses(Transformer<float>& model, std::span<const std::int32_t> tokens) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  ZEBRA_CHECK(n >= 2, "token losses: need at least 2 tokens (one prediction), got ", n);
  const ModelConfig& c = model.config();
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(n <= c.max_seq_len, "token losses: ", n, " tokens exceed the model's learned position table (",
                c.max_seq_len, ")");
  }
  for (std::int64_t j = 0; j < n; ++j) {
    ZEBRA_CHECK(tokens[static_cast<std::size_t>(j)] >= 0 && tokens[static_cast<std::size_t>(j)] < c.vocab_size,
                "token losses: token ", tokens[static_cast<std::size_t>(j)], " at index ", j,
                " is outside the model's vocabulary [0, ", c.vocab_size, ")");
  }
  std::vector<std::int32_t> input(tokens.begin(), tokens.end()), target(static_cast<std::size_t>(n), -1);
  std::copy(tokens.begin() + 1, tokens.end(), target.begin());
  model.forward_hidden(BatchView{1, n, input.data(), target.data(), nullptr});
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  std::vector<float> logits;
  row_losses(model, target, model.options().loss_chunk, logits, row_loss);
  row_loss.pop_back();  // the last position predicts nothing
  return row_loss;
}

}  // namespace zebra
