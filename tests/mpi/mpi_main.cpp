// main() of the tests that run as the ranks of one MPI job (`mpirun -np N test_mpi_ranks`, CTest label "mpi"):
// every rank runs every test, and the collectives inside a test pair up across ranks. A rank whose test fails
// exits non-zero, and mpirun reports it.
#include <gtest/gtest.h>

#include "zebra/train/communicator.hpp"

int main(int argc, char** argv) {
  zebra::MpiSession session(&argc, &argv, true);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
