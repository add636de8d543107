// The collectives of train/data_parallel.hpp on 2 and 3 ranks: every rank can rebuild every other rank's input
// from its seed, so each checks the result against the sum it computes itself in rank order (bit for bit).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "mpi/mpi_test_util.hpp"
#include "zebra/train/data_parallel.hpp"
#include "zebra/train/optimizer.hpp"

namespace zebra {
namespace {

std::vector<float> input_of(int rank, std::size_t n) {
  Rng rng(1000 + static_cast<std::uint64_t>(rank));
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Sizes: smaller than one shard block (some ranks get nothing), not a multiple of the block, and more than one
// exchange piece (2^20 elements) per shard.
const std::size_t kSizes[] = {1, 1000, 3 * kGradNormBlock + 17, (std::size_t{5} << 20) + 3};

TEST(Collectives, ShardsCoverTheBufferInOrder) {
  for (std::size_t n : kSizes) {
    for (int size = 1; size <= 4; ++size) {
      std::size_t next = 0;
      for (int r = 0; r < size; ++r) {
        const ParamRange s = shard_of(n, r, size);
        EXPECT_EQ(s.begin, next);
        EXPECT_TRUE(s.begin % kGradNormBlock == 0 || s.begin == n);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(Collectives, SumGradientsAddsInRankOrderOnEveryRank) {
  Communicator& comm = test::world();
  for (std::size_t n : kSizes) {
    std::vector<float> data = input_of(comm.rank(), n);
    sum_gradients(comm, data.data(), n);
    std::vector<float> want = input_of(0, n);
    for (int r = 1; r < comm.size(); ++r) {
      const std::vector<float> other = input_of(r, n);
      for (std::size_t i = 0; i < n; ++i) want[i] += other[i];
    }
    EXPECT_EQ(data, want) << "n = " << n;
  }
}

TEST(Collectives, ShardedNormEqualsTheWholeNormBitForBit) {
  Communicator& comm = test::world();
  for (std::size_t n : kSizes) {
    const std::vector<float> data = input_of(7, n);  // the same reduced buffer on every rank
    EXPECT_EQ(sharded_grad_norm(comm, data.data(), n), global_grad_norm(data.data(), n)) << "n = " << n;
  }
}

TEST(Collectives, GatherToRootAssemblesTheShards) {
  Communicator& comm = test::world();
  for (std::size_t n : kSizes) {
    const std::vector<float> whole = input_of(3, n);
    const ParamRange mine = shard_of(n, comm.rank(), comm.size());
    std::vector<float> got(comm.rank() == 0 ? n : 0);
    gather_to_root(comm, whole.data() + mine.begin, got.data(), n);
    if (comm.rank() == 0) {
      EXPECT_EQ(got, whole);
    }
  }
}

TEST(Collectives, SumsOfScalarsAreTheSameOnEveryRank) {
  Communicator& comm = test::world();
  double x[2] = {0.1 * (comm.rank() + 1), 1.0};
  comm.sum(x, 2);
  double want = 0.0;
  for (int r = 0; r < comm.size(); ++r) want += 0.1 * (r + 1);
  EXPECT_EQ(x[0], want);
  EXPECT_EQ(x[1], comm.size());
  EXPECT_TRUE(comm.any(comm.rank() == comm.size() - 1));
  EXPECT_FALSE(comm.any(false));
}

}  // namespace
}  // namespace zebra
