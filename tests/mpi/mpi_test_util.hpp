// Shared by the MPI rank tests: the world, a tiny model, random batches, and tolerance checks that name the worst
// element.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "zebra/data/batcher.hpp"
#include "zebra/model/batch.hpp"
#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/train/communicator.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::test {

inline Communicator& world() {
  static Communicator c = Communicator::world();
  return c;
}

// A batch of `batch` random sequences of `seq_len` tokens below `vocab`: every target scored except a few; with
// documents every row holds three, so that document starts fall inside and across the ranks' slices.
inline Batch random_batch(std::int64_t batch, std::int64_t seq_len, std::int64_t vocab, std::uint64_t seed, bool docs) {
  Batch b;
  b.batch_size = batch;
  b.seq_len = seq_len;
  Rng rng(seed);
  for (std::int64_t r = 0; r < batch; ++r) {
    const std::int64_t cut1 = seq_len / 3 + r, cut2 = (2 * seq_len) / 3 - r;
    for (std::int64_t t = 0; t < seq_len; ++t) {
      b.tokens.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab))));
      const auto target = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab)));
      b.targets.push_back(t % 7 == 3 ? -1 : target);
      const std::int64_t start = !docs ? 0 : t >= cut2 ? cut2 : t >= cut1 ? cut1 : 0;
      b.doc_start.push_back(static_cast<std::int32_t>(start));
    }
  }
  return b;
}

inline BatchView view_of(const Batch& b, bool docs) {
  return BatchView{b.batch_size, b.seq_len, b.tokens.data(), b.targets.data(), docs ? b.doc_start.data() : nullptr};
}

// |got - want| <= atol * scale + rtol * |want| per element of each tensor of the layout, scale = max(|want|) of
// the tensor (its elements are sums of terms of about that size). Returns the largest error / tolerance.
template <typename A, typename B>
double expect_tensors_near(const ParamLayout& layout, const A* got, const B* want, double atol, double rtol,
                           const std::string& what) {
  double worst = 0.0;
  for (const TensorInfo& t : layout.tensors) {
    double scale = 0.0;
    for (std::size_t i = 0; i < t.numel; ++i)
      scale = std::max(scale, std::fabs(static_cast<double>(want[t.offset + i])));
    std::size_t bad = 0, at = 0;
    double tensor_worst = 0.0;
    for (std::size_t i = 0; i < t.numel; ++i) {
      const double w = static_cast<double>(want[t.offset + i]), g = static_cast<double>(got[t.offset + i]);
      const double tol = atol * scale + rtol * std::fabs(w) + 1e-300;
      const double ratio = std::fabs(g - w) / tol;
      if (!(ratio <= 1.0)) ++bad;
      if (!(ratio <= tensor_worst)) {
        tensor_worst = ratio;
        at = i;
      }
    }
    if (bad > 0) {
      ADD_FAILURE() << what << " " << t.name << ": " << bad << " of " << t.numel
                    << " elements out of tolerance; worst [" << at << "] got "
                    << static_cast<double>(got[t.offset + at]) << " want " << static_cast<double>(want[t.offset + at])
                    << " (scale " << scale << ")";
    }
    worst = std::max(worst, tensor_worst);
  }
  return worst;
}

}  // namespace zebra::test
