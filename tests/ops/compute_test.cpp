// ops/compute.hpp: the per-call options. ThreadScope changes the calling thread's OpenMP thread count for its
// lifetime only, and only for that thread (what lets two sessions run ops with different thread counts).
#include "zebra/ops/compute.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <future>
#include <thread>

#include "zebra/ops/attention.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

TEST(ThreadScope, SetsAndRestoresTheCallersThreadCount) {
  const int before = omp_get_max_threads();
  const int other = before == 1 ? 2 : 1;
  {
    ComputeOptions o;
    o.threads = other;
    const ThreadScope scope(o);
    EXPECT_EQ(omp_get_max_threads(), other);
    int team = 0;
#pragma omp parallel
    {
#pragma omp single
      team = omp_get_num_threads();
    }
    EXPECT_LE(team, other);
  }
  EXPECT_EQ(omp_get_max_threads(), before);
  {
    const ThreadScope scope(ComputeOptions{});  // threads = 0: the caller's default, untouched
    EXPECT_EQ(omp_get_max_threads(), before);
  }
  EXPECT_EQ(omp_get_max_threads(), before);
}

TEST(ThreadScope, OtherThreadsKeepTheirCount) {
  const int before = omp_get_max_threads();
  std::promise<void> scope_set, checked;
  int inside = 0;
  std::thread t([&] {
    ComputeOptions o;
    o.threads = before + 3;
    const ThreadScope scope(o);
    inside = omp_get_max_threads();
    scope_set.set_value();
    checked.get_future().wait();  // hold the scope while the main thread looks at its own count
  });
  scope_set.get_future().wait();
  const int main_during = omp_get_max_threads();
  checked.set_value();
  t.join();
  EXPECT_EQ(inside, before + 3);
  EXPECT_EQ(main_during, before);
  EXPECT_EQ(omp_get_max_threads(), before);
}

TEST(ThreadScope, RefusesNegativeCounts) {
  ComputeOptions o;
  o.threads = -1;
  EXPECT_THROW(ThreadScope{o}, Error);
}

TEST(ComputeOptions, DefaultAttentionKernelFollowsTheSimdPath) {
  ComputeOptions o;
  o.simd = SimdPath::kScalar;
  EXPECT_EQ(resolve_attention_kernel(o), AttentionKernel::kScalar);
  if (simd_path_supported(SimdPath::kAvx2)) {
    o.simd = SimdPath::kAvx2;
    EXPECT_EQ(resolve_attention_kernel(o), AttentionKernel::kAvx2);
  }
  o.attention = AttentionKernel::kScalar;  // an explicit kernel wins
  EXPECT_EQ(resolve_attention_kernel(o), AttentionKernel::kScalar);
}

}  // namespace
}  // namespace zebra
