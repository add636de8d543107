// Where a forward pass's wall time goes, by kind of op: what `zebra generate --profile` prints (docs/performance.md's
// decode breakdown). Accumulated by InferenceSession and block_forward when SessionOptions::times points at one;
// each op is one call of its kernel (a parallel region of its own), timed from the calling thread, so the
// threads' start-up and join are in the op's time.
#pragma once

#include <chrono>
#include <cstdint>

namespace zebra {

struct StepTimes {
  double embedding = 0.0;    // token rows from the embedding table
  double norms = 0.0;        // RMS norms (both of each layer and the final one)
  double projections = 0.0;  // q|k|v, o, gate|up, down products
  double rope = 0.0;         // rotary embedding of q and k
  double attention = 0.0;    // the attention step, the cache write included
  double elementwise = 0.0;  // SwiGLU and the residual additions
  double lm_head = 0.0;      // the logits product
  std::int64_t passes = 0;   // forward passes timed
  double total() const { return embedding + norms + projections + rope + attention + elementwise + lm_head; }
};

// Where one kind of op's time goes in t, or null when t is (nothing is timed).
inline double* time_slot(StepTimes* t, double StepTimes::*field) { return t == nullptr ? nullptr : &(t->*field); }

// Adds the wall time of its scope to *sink (nothing when sink is null).
class TimedScope {
 public:
  explicit TimedScope(double* sink) : sink_(sink) {
    if (sink_ != nullptr) t0_ = std::chrono::steady_clock::now();
  }
  ~TimedScope() {
    if (sink_ != nullptr) *sink_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  TimedScope(const TimedScope&) = delete;
  TimedScope& operator=(const TimedScope&) = delete;

 private:
  double* sink_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace zebra
