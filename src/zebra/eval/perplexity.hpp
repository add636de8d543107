// Perplexity over a token stream in windows of ctx tokens (`zebra eval ppl`, docs/evaluation.md).
//
// Non-overlapping windows (stride = 0, the default): the stream is cut into floor(n / ctx) consecutive windows
// of ctx tokens (a shorter tail is not scored). In each window, position j predicts token j + 1; only the
// predictions made at positions score_from <= j < ctx - 1 are scored, so with score_from = K every scored token
// has at least K + 1 tokens of context in its window. With bos_first, the window's first token is replaced by
// BOS (the window's other tokens and all targets are the stream's own). This is llama.cpp's `perplexity` tool
// with n_ctx = ctx and its scoring start `first` = score_from (it uses ctx / 2 and BOS replacement): with
// ctx 512, score_from 256 the scored tokens are 257..511 of each window, 255 per window.
//
// Strided windows (stride = S, 1 <= S <= ctx; the Hugging Face "perplexity of fixed-length models" scheme):
// window w covers stream tokens [w S, w S + ctx) for w = 0 .. floor((n - ctx) / S) (only whole windows). The
// first window scores all its predictions (positions 0 .. ctx - 2); every later window scores only its last
// min(S, ctx - 1) predictions (positions ctx - 1 - min(S, ctx - 1) .. ctx - 2), i.e. the tokens the previous
// window did not reach. With S < ctx every stream token 1 .. (W - 1) S + ctx - 1 is scored exactly once, each
// with at least ctx - S tokens of context (except in the first window); stride = ctx gives the non-overlapping
// result. score_from must be 0 in strided mode.
//
// The mean is over all scored tokens of all windows; ppl = exp(mean). Alongside, the loss is summed per window
// position (position_loss_sum[p], p = 1 .. ctx - 1: the prediction of the window's token p from its p
// preceding tokens), which eval/position_curve.hpp turns into a loss-against-position curve.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "zebra/model/transformer.hpp"

namespace zebra {

struct PerplexityOptions {
  std::int64_t ctx = 512;       // window length in tokens
  std::int64_t score_from = 0;  // first window position whose prediction is scored (non-overlapping mode)
  std::int64_t stride = 0;      // 0 = non-overlapping windows; S > 0 = a window every S tokens (see above)
  bool bos_first = false;       // replace each window's first token by BOS
  std::int32_t bos_id = 1;
  std::int64_t max_tokens = 0;  // use only the first max_tokens tokens of the stream (0 = all)
};

struct PerplexityResult {
  double loss_sum = 0.0;      // sum of -ln p over scored tokens (nats)
  std::int64_t n_scored = 0;  // scored tokens
  std::int64_t n_windows = 0;
  std::int64_t n_tokens = 0;   // stream tokens covered by the windows (n_windows * ctx without a stride)
  std::int64_t n_forward = 0;  // tokens run through the model (n_windows * ctx)
  double seconds = 0.0;
  std::vector<double> window_loss;  // mean loss of each window (for a standard error)
  // Indexed by the scored token's window position p (0 .. ctx - 1; entry 0 stays empty: token 0 is never
  // predicted): summed loss and number of scored tokens at that position over all windows.
  std::vector<double> position_loss_sum;
  std::vector<std::int64_t> position_count;
  double mean_loss() const { return n_scored > 0 ? loss_sum / static_cast<double>(n_scored) : 0.0; }
  double ppl() const;
  // Standard error of mean_loss() estimated from the spread of the window means (windows are taken as
  // independent samples of equal size; with a stride the first window scores more tokens than the others and
  // neighbouring windows share context, so it is a rough figure there).
  double mean_loss_stderr() const;
};

// Scores `tokens` with `model`. progress(done_windows, total_windows) is called after each window when given.
PerplexityResult evaluate_perplexity(Transformer<float>& model, std::span<const std::int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress = {});

// Per-token losses of one sequence read in one window: loss[j] = -ln p(tokens[j + 1] | tokens[0 .. j]) for
// j = 0 .. n - 2 (the same forward pass and lm head as evaluate_perplexity). Needs n >= 2.
std::vector<double> evaluate_token_losses(Transformer<float>& model, std::span<const std::int32_t> tokens);

}  // namespace zebra
