// zebra bench bandwidth reads and moves what it says: the read kernel's sum is the closed form of the words it
// was given (so every word was read, whatever the thread count), and the report counts the bytes of each kernel.
#include "zebra/bench/bandwidth.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "zebra/util/error.hpp"

namespace zebra::bench {
namespace {

TEST(BenchBandwidth, ReadKernelSumsEveryWord) {
  std::vector<std::uint64_t> w(100003);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = i;
  const std::uint64_t n = w.size();
  for (int threads : {1, 2, 3}) EXPECT_EQ(read_words(w.data(), static_cast<std::int64_t>(n), threads), n * (n - 1) / 2);
}

TEST(BenchBandwidth, ReportCountsTheBytesOfEachKernel) {
  BandwidthOptions o;
  o.bytes = std::int64_t{1} << 20;
  o.repeats = 1;
  o.compute.threads = 1;
  const BandwidthReport r = run_bandwidth(o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].kernel, "read");
  EXPECT_EQ(r.rows[0].bytes, o.bytes);
  EXPECT_EQ(r.rows[1].bytes, o.bytes);
  EXPECT_EQ(r.rows[2].bytes, 2 * o.bytes);
  const std::uint64_t words = static_cast<std::uint64_t>(o.bytes / 8);
  EXPECT_EQ(r.checksum, words * (words - 1) / 2);  // the buffer holds 0, 1, 2, ...
  for (const BandwidthRow& row : r.rows) EXPECT_GT(row.gb_per_s, 0.0);
  const nlohmann::json j = r.to_json();
  EXPECT_EQ(j["mode"], "bandwidth");
  EXPECT_EQ(j["rows"].size(), 3u);
  o.bytes = 1000;
  EXPECT_THROW(run_bandwidth(o), Error);
}

}  // namespace
}  // namespace zebra::bench
