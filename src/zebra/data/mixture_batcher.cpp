#include "zebra/data/mixture_batcher.hpp"

#include "zebra/util/error.hpp"

namespace zebra {

const char* to_string(SequenceKind k) { return k == SequenceKind::kShort ? "short" : "long"; }

namespace {

std::int64_t short_rows(std::int64_t batch_size, std::int64_t seq_len, const MixtureOptions& m) {
  ZEBRA_CHECK(m.short_fraction >= 0.0 && m.short_fraction <= 1.0, "short-sequence fraction: got ", m.short_fraction,
              ", expected a number in [0, 1]");
  if (m.short_fraction == 0.0) return 0;
  ZEBRA_CHECK(m.short_seq_len >= 1 && m.short_seq_len <= seq_len && seq_len % m.short_seq_len == 0,
              "short-sequence length: got ", m.short_seq_len, ", expected a divisor of the sequence length ", seq_len,
              " (each short micro-batch holds as many tokens as a long one)");
  return batch_size * (seq_len / m.short_seq_len);
}

}  // namespace

MixtureBatcher::MixtureBatcher(const TokenDataset& data, std::int64_t batch_size, std::int64_t seq_len,
                               BatchMode long_mode, const MixtureOptions& mixture, std::uint64_t seed)
    : long_(data, batch_size, seq_len, long_mode, seed), short_fraction_(mixture.short_fraction),
      kind_rng_(seed ^ 0x6D697874ULL) {
  const std::int64_t rows = short_rows(batch_size, seq_len, mixture);
  // A seed of its own, so that adding short sequences does not change which long windows are drawn first.
  if (rows > 0) short_.emplace(data, rows, mixture.short_seq_len, BatchMode::kRandom, seed ^ 0x73686F72ULL);
}

SequenceKind MixtureBatcher::next(Batch& out) {
  if (short_ && kind_rng_.uniform() < short_fraction_) {
    short_->next(out);
    return SequenceKind::kShort;
  }
  long_.next(out);
  return SequenceKind::kLong;
}

MixtureState MixtureBatcher::state() const {
  MixtureState s;
  s.long_batcher = long_.state();
  if (short_) s.short_batcher = short_->state();
  s.kind_rng_state = kind_rng_.state();
  return s;
}

void MixtureBatcher::set_state(const MixtureState& s) {
  ZEBRA_CHECK(s.short_batcher.has_value() == short_.has_value(), "batcher state: the checkpoint was written ",
              s.short_batcher ? "with" : "without", " short sequences, this run is ", short_ ? "with" : "without",
              " them (the --short-fraction of a resumed run must stay the same)");
  long_.set_state(s.long_batcher);
  if (short_) short_->set_state(*s.short_batcher);
  kind_rng_.set_state(s.kind_rng_state);
}

void MixtureBatcher::set_one_document_per_row(bool on) {
  long_.set_one_document_per_row(on);
  if (short_) short_->set_one_document_per_row(on);
}

}  // namespace zebra
