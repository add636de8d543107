// The one thread pool: OpenMP, shared with OpenBLAS (which is linked in its OpenMP build).
#pragma once

namespace zebra {

int num_threads();
// Sets the OpenMP thread count used by zebra's kernels and by OpenBLAS.
void set_num_threads(int n);

// Sets the thread count for a scope and restores the previous one at its end (tests of tiny models, where an
// OpenMP team's barriers cost more than the arithmetic on a shared machine).
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ScopedThreads() { set_num_threads(saved_); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_;
};

}  // namespace zebra
