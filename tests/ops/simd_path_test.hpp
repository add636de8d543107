// Shared by the ops tests that run once per SIMD path: the fixture (skipped where the CPU cannot run the path,
// options_ selecting it), the path's name in test names, and random fp32 inputs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/cpu_features.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

// For test names and messages (gtest finds it next to the type).
inline void PrintTo(const SimdPath& path, std::ostream* os) { *os << to_string(path); }

namespace test {

class PathTest : public ::testing::TestWithParam<SimdPath> {
 protected:
  void SetUp() override {
    if (!simd_path_supported(GetParam()))
      GTEST_SKIP() << "this CPU cannot run the " << to_string(GetParam()) << " path";
    options_.simd = GetParam();
  }
  ComputeOptions options_;
};

inline std::string path_name(const ::testing::TestParamInfo<SimdPath>& info) { return to_string(info.param); }

// n values of N(0, scale^2), seeded.
inline std::vector<float> random_floats(std::int64_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

}  // namespace test
}  // namespace zebra
