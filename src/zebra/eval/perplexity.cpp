#include "zebra/eval/perplexity.hpp"

#include <algorithm>
#include <cmath>

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

PerplexityResult evaluate_perplexity(Transformer<float>& model, std::span<const std::int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress) {
  const ModelConfig& c = model.config();
  const std::int64_t ctx = options.ctx;
  ZEBRA_CHECK(ctx >= 2, "perplexity: ctx must be >= 2, got ", ctx);
  ZEBRA_CHECK(options.score_from >= 0 && options.score_from < ctx - 1, "perplexity: score_from must lie in [0, ",
              ctx - 1, ") for ctx ", ctx, ", got ", options.score_from);
  ZEBRA_CHECK(options.max_tokens >= 0, "perplexity: max_tokens must be >= 0, got ", options.max_tokens);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    ZEBRA_CHECK(ctx <= c.max_seq_len, "perplexity: ctx ", ctx, " exceeds the model's learned position table (",
                c.max_seq_len, ")");
  }
  std::int64_t n = static_cast<std::int64_t>(tokens.size());
  if (options.max_tokens > 0) n = std::min(n, options.max_tokens);
  const std::int64_t n_windows = n / ctx;
  ZEBRA_CHECK(n_windows >= 1, "perplexity: ", n, " tokens do not fill one window of ", ctx, " tokens");

  PerplexityResult result;
  result.n_windows = n_windows;
  result.n_tokens = n_windows * ctx;
  Timer timer;
  // One window per forward pass: each window's loss is then known (for the standard error), and a
  // window of ctx rows already makes the projections large GEMMs.
  std::vector<std::int32_t> input(static_cast<std::size_t>(ctx)), target(static_cast<std::size_t>(ctx));
  for (std::int64_t w = 0; w < n_windows; ++w) {
    const std::int32_t* src = tokens.data() + w * ctx;
    std::copy(src, src + ctx, input.begin());
    if (options.bos_first) input[0] = options.bos_id;
    std::fill(target.begin(), target.end(), -1);
    for (std::int64_t j = options.score_from; j < ctx - 1; ++j) target[static_cast<std::size_t>(j)] = src[j + 1];
    const LossResult loss = model.forward_loss(BatchView{1, ctx, input.data(), target.data(), nullptr});
    result.loss_sum += loss.loss_sum;
    result.n_scored += loss.n_valid;
    result.window_loss.push_back(loss.mean());
    if (progress) progress(w + 1, n_windows);
  }
  result.seconds = timer.seconds();
  return result;
}

}  // namespace zebra
