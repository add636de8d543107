// The LCAT data recipe: micro-batches of long sequences mixed with micro-batches of short ones.
//
// Each micro-batch is of one kind, drawn independently with P(short) = short_fraction:
//   long   B rows of T tokens from `long_mode` (BatchMode::kDocument in LCAT: windows aligned to document starts,
//          so a document of up to T tokens is drawn whole and a longer one in consecutive aligned windows);
//   short  B * T / S rows of S tokens at random offsets (S = short_seq_len divides T).
// Both kinds hold B * T tokens, so a step's cost and its token count do not depend on the draw; the trainer
// reports the loss of each kind (train/trainer.cpp). short_fraction 0 is plain long batches (no draw is made,
// so a run without a mixture draws exactly what a plain Batcher draws).
// The state (the two batchers' and the kind draw's) is exported for checkpoints, so a resumed run draws
// bit-identical micro-batches.
#pragma once

#include <cstdint>
#include <optional>

#include "zebra/data/batcher.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

enum class SequenceKind { kLong, kShort };
const char* to_string(SequenceKind k);  // "long", "short"

struct MixtureOptions {
  double short_fraction = 0.0;     // in [0, 1]
  std::int64_t short_seq_len = 0;  // S; required when short_fraction > 0
};

struct MixtureState {
  BatcherState long_batcher;
  std::optional<BatcherState> short_batcher;  // present when the mixture has short sequences
  std::uint64_t kind_rng_state = 0;
};

class MixtureBatcher {
 public:
  // Throws naming the option when short_fraction is outside [0, 1], or S does not divide T / exceeds the data.
  MixtureBatcher(const TokenDataset& data, std::int64_t batch_size, std::int64_t seq_len, BatchMode long_mode,
                 const MixtureOptions& mixture, std::uint64_t seed);

  // Fills `out` with the next micro-batch and returns its kind.
  SequenceKind next(Batch& out);

  MixtureState state() const;
  // Throws when the state's shape or kinds differ from this batcher's.
  void set_state(const MixtureState& s);

  bool mixed() const { return short_.has_value(); }
  // Batcher::set_one_document_per_row for both kinds.
  void set_one_document_per_row(bool on);

 private:
  Batcher long_;
  std::optional<Batcher> short_;
  double short_fraction_;
  Rng kind_rng_;
};

}  // namespace zebra
