#include "zebra/data/batcher.hpp"

#include <limits>
#include <nlohmann/json.hpp>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

const char* mode_name(BatchMode m) {
  switch (m) {
    case BatchMode::kRandom: return "random";
    case BatchMode::kSequential: return "sequential";
    case BatchMode::kDocument: return "document";
  }
  return "?";
}

template <typename T>
T json_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  ZEBRA_CHECK(it != j.end(), "batcher state: missing field \"", key, "\"");
  ZEBRA_CHECK(it->is_number_integer(), "batcher state: field \"", key, "\" must be an integer, found ",
              it->type_name());
  if constexpr (std::is_unsigned_v<T>) {
    ZEBRA_CHECK(it->is_number_unsigned(), "batcher state: field \"", key, "\" must be non-negative");
  }
  return it->get<T>();
}

}  // namespace

nlohmann::json batcher_state_to_json(const BatcherState& s) {
  return nlohmann::json{{"mode", mode_name(s.mode)}, {"rng_state", s.rng_state},   {"cursor", s.cursor},
                        {"epoch", s.epoch},          {"batch_size", s.batch_size}, {"seq_len", s.seq_len},
                        {"n_tokens", s.n_tokens}};
}

BatcherState batcher_state_from_json(const nlohmann::json& j) {
  ZEBRA_CHECK(j.is_object(), "batcher state: expected a JSON object, found ", j.type_name());
  BatcherState s;
  auto mode = j.find("mode");
  ZEBRA_CHECK(mode != j.end() && mode->is_string(), "batcher state: missing string field \"mode\"");
  const auto& m = mode->get_ref<const std::string&>();
  if (m == "random") {
    s.mode = BatchMode::kRandom;
  } else if (m == "sequential") {
    s.mode = BatchMode::kSequential;
  } else if (m == "document") {
    s.mode = BatchMode::kDocument;
  } else {
    fail("batcher state: mode \"", m, "\" (expected \"random\", \"sequential\" or \"document\")");
  }
  s.rng_state = json_field<std::uint64_t>(j, "rng_state");
  s.cursor = json_field<std::int64_t>(j, "cursor");
  s.epoch = json_field<std::int64_t>(j, "epoch");
  s.batch_size = json_field<std::int64_t>(j, "batch_size");
  s.seq_len = json_field<std::int64_t>(j, "seq_len");
  s.n_tokens = json_field<std::int64_t>(j, "n_tokens");
  return s;
}

Batcher::Batcher(const TokenDataset& dataset, std::int64_t batch_size, std::int64_t seq_len, BatchMode mode,
                 std::uint64_t seed)
    : dataset_(&dataset), batch_size_(batch_size), seq_len_(seq_len), mode_(mode), rng_(seed) {
  ZEBRA_CHECK(batch_size >= 1, "batcher: batch size must be >= 1, got ", batch_size);
  ZEBRA_CHECK(seq_len >= 1 && seq_len < std::numeric_limits<std::int32_t>::max(),
              "batcher: sequence length must be in [1, 2^31 - 1), got ", seq_len);
  ZEBRA_CHECK(dataset.n_tokens() >= seq_len + 1, "batcher: dataset '", dataset.path(), "' has ", dataset.n_tokens(),
              " tokens, fewer than one window of seq_len + 1 = ", seq_len + 1);
  n_windows_ = (dataset.n_tokens() - 1) / seq_len;
  window_.resize(static_cast<std::size_t>(seq_len + 1));
}

void Batcher::fill_row(Batch& out, std::int64_t b, std::int64_t start) {
  const std::int64_t T = seq_len_;
  dataset_->read(start, T + 1, window_.data());
  std::int32_t* tok = out.tokens.data() + b * T;
  std::int32_t* tgt = out.targets.data() + b * T;
  std::int32_t* ds = out.doc_start.data() + b * T;
  for (std::int64_t t = 0; t < T; ++t) {
    tok[t] = window_[t];
    tgt[t] = window_[t + 1];
  }
  auto offsets = dataset_->offsets();
  std::int64_t d = dataset_->doc_of(start);
  for (std::int64_t t = 0; t < T; ++t) {
    const auto p = static_cast<std::uint64_t>(start + t);
    while (offsets[d + 1] <= p) ++d;  // skips empty documents too
    const auto first = static_cast<std::int64_t>(offsets[d]);
    ds[t] = first <= start ? 0 : static_cast<std::int32_t>(first - start);
  }
  if (dataset_->has_loss_mask()) {
    for (std::int64_t t = 0; t < T; ++t) {
      if (!dataset_->scored(start + t + 1)) tgt[t] = -1;
    }
  }
  if (one_document_per_row_) {
    const std::int64_t end = dataset_->doc_range(dataset_->doc_of(start)).second;
    for (std::int64_t t = std::max<std::int64_t>(end - start - 1, 0); t < T; ++t) tgt[t] = -1;
  }
  out.row_start[b] = start;
}

void Batcher::next(Batch& out) {
  const std::int64_t B = batch_size_, T = seq_len_;
  out.batch_size = B;
  out.seq_len = T;
  out.tokens.resize(static_cast<std::size_t>(B * T));
  out.targets.resize(static_cast<std::size_t>(B * T));
  out.doc_start.resize(static_cast<std::size_t>(B * T));
  out.row_start.resize(static_cast<std::size_t>(B));
  const std::int64_t max_start = dataset_->n_tokens() - T - 1;  // >= 0 by the constructor's check
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t start;
    if (mode_ == BatchMode::kRandom) {
      start = static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(max_start) + 1));
    } else if (mode_ == BatchMode::kDocument) {
      // A token drawn uniformly picks a document (so in proportion to its length) and a T-aligned
      // window inside it: rows start at a document's BOS or at a multiple of T into it, so short
      // documents are seen whole and long ones in consecutive aligned windows.
      const auto p = static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(dataset_->n_tokens())));
      const std::int64_t begin = dataset_->doc_range(dataset_->doc_of(p)).first;
      start = std::min(begin + (p - begin) / T * T, max_start);
    } else {
      start = cursor_ * T;
      if (++cursor_ == n_windows_) {
        cursor_ = 0;
        ++epoch_;
      }
    }
    fill_row(out, b, start);
  }
}

Batch Batcher::next() {
  Batch b;
  next(b);
  return b;
}

BatcherState Batcher::state() const {
  BatcherState s;
  s.mode = mode_;
  s.rng_state = rng_.state();
  s.cursor = cursor_;
  s.epoch = epoch_;
  s.batch_size = batch_size_;
  s.seq_len = seq_len_;
  s.n_tokens = dataset_->n_tokens();
  return s;
}

void Batcher::set_state(const BatcherState& s) {
  ZEBRA_CHECK(s.mode == mode_, "batcher state: mode ", mode_name(s.mode), " does not match this batcher's ",
              mode_name(mode_));
  ZEBRA_CHECK(s.batch_size == batch_size_ && s.seq_len == seq_len_, "batcher state: saved for batch size ",
              s.batch_size, " and sequence length ", s.seq_len, ", this batcher has ", batch_size_, " and ", seq_len_);
  ZEBRA_CHECK(s.n_tokens == dataset_->n_tokens(), "batcher state: saved for a dataset of ", s.n_tokens, " tokens, '",
              dataset_->path(), "' has ", dataset_->n_tokens());
  ZEBRA_CHECK(s.cursor >= 0 && s.cursor < n_windows_ && s.epoch >= 0, "batcher state: cursor ", s.cursor, " / epoch ",
              s.epoch, " out of range (", n_windows_, " windows)");
  rng_.set_state(s.rng_state);
  cursor_ = s.cursor;
  epoch_ = s.epoch;
}

}  // namespace zebra
