// Training and evaluation batches cut from a token dataset.
//
// A batch is B rows, each a window of T + 1 consecutive tokens of the dataset's stream (documents
// are already packed back to back as BOS ... EOS). Row b contributes inputs window[0..T) and targets
// window[1..T+1), so targets are simply the next tokens (a row's last target is the token after its
// last input). Validation data comes from a separate dataset file with its own Batcher.
//
// Modes:
//   sequential  window k starts at k*T (non-overlapping inputs, each token predicted exactly once):
//               rows take windows 0, 1, 2, ... in order; after the last whole window,
//               n_windows() - 1, the next row starts again at window 0 and `epoch` increases.
//   random      each row starts at a uniformly random offset in [0, n_tokens - T - 1], drawn from
//               a zebra::Rng seeded once (its whole state is one uint64).
//   document    rows start at a document's first token or a multiple of T into it (a token drawn
//               uniformly picks the document and the window): long documents are drawn whole, in
//               aligned windows, never cut at an arbitrary offset.
// Targets that a dataset's loss mask marks as context (instruction data: everything but the assistant's answers)
// are -1, ignored by the loss. With one_document_per_row, targets past the end of the document a row starts in
// are -1 too: one conversation per sequence, the rest of the row is padding (causal attention keeps it from
// changing the scored positions).
// The state (mode, rng state, cursor, epoch) can be exported and imported, so a resumed run draws
// bit-identical batches.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "zebra/data/token_dataset.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

enum class BatchMode { kSequential, kRandom, kDocument };

struct Batch {
  std::int64_t batch_size = 0;        // B
  std::int64_t seq_len = 0;           // T
  std::vector<std::int32_t> tokens;   // [B*T] row-major: inputs
  std::vector<std::int32_t> targets;  // [B*T] the next token of each input; -1 = not scored
  // [B*T] for each position, the index within its row of the first token of the document the
  // position belongs to; 0 when that document began before the row. Position t of a row may attend
  // to positions doc_start[t]..t when masking across document boundaries.
  std::vector<std::int32_t> doc_start;
  std::vector<std::int64_t> row_start;  // [B] stream offset of each row's first token
};

// Everything needed to continue drawing the same batches. batch_size, seq_len and n_tokens are
// recorded so that importing into a batcher over a different dataset or shape is refused.
struct BatcherState {
  BatchMode mode = BatchMode::kRandom;
  std::uint64_t rng_state = 0;
  std::int64_t cursor = 0;  // sequential: the next window index
  std::int64_t epoch = 0;   // sequential: completed passes over the windows
  std::int64_t batch_size = 0;
  std::int64_t seq_len = 0;
  std::int64_t n_tokens = 0;
};

// {"mode": "random"|"sequential", "rng_state": uint64, "cursor", "epoch", "batch_size", "seq_len",
//  "n_tokens"}; from_json throws zebra::Error on a missing or mistyped field.
nlohmann::json batcher_state_to_json(const BatcherState& s);
BatcherState batcher_state_from_json(const nlohmann::json& j);

class Batcher {
 public:
  // The dataset must outlive the batcher and hold at least T + 1 tokens.
  Batcher(const TokenDataset& dataset, std::int64_t batch_size, std::int64_t seq_len, BatchMode mode,
          std::uint64_t seed = 0);

  // Fills `out` (resizing its vectors) with the next batch and advances the state.
  void next(Batch& out);
  Batch next();

  // Sequential mode: number of whole windows, (n_tokens - 1) / T. One pass over the dataset is
  // ceil(n_windows / B) batches; the last of those wraps into the next epoch when B does not divide
  // n_windows.
  std::int64_t n_windows() const { return n_windows_; }

  BatcherState state() const;
  // Throws when the state's mode, shape or dataset size differ from this batcher's, or its cursor is
  // out of range.
  void set_state(const BatcherState& s);

  std::int64_t batch_size() const { return batch_size_; }
  std::int64_t seq_len() const { return seq_len_; }
  BatchMode mode() const { return mode_; }
  // Score only the targets inside the document each row starts in (off by default).
  void set_one_document_per_row(bool on) { one_document_per_row_ = on; }
  bool one_document_per_row() const { return one_document_per_row_; }

 private:
  // Fills row b of `out` with the window starting at stream offset `start`.
  void fill_row(Batch& out, std::int64_t b, std::int64_t start);

  const TokenDataset* dataset_;
  std::int64_t batch_size_, seq_len_;
  BatchMode mode_;
  Rng rng_;
  std::int64_t cursor_ = 0, epoch_ = 0;
  std::int64_t n_windows_ = 0;
  bool one_document_per_row_ = false;
  std::vector<std::int32_t> window_;  // scratch [T+1]
};

}  // namespace zebra
