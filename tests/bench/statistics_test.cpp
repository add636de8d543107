// The summary behind every `zebra bench` figure: minimum and median over the timed runs, runs kept in order,
// and the number of calls time_runs makes.
#include <gtest/gtest.h>

#include <vector>

#include "zebra/bench/statistics.hpp"
#include "zebra/util/error.hpp"

namespace zebra::bench {
namespace {

TEST(BenchStatistics, MinAndMedianOfAnOddCount) {
  const Timing t = summarize({0.5, 0.1, 0.3});
  EXPECT_EQ(t.min_s, 0.1);
  EXPECT_EQ(t.median_s, 0.3);
  EXPECT_EQ(t.runs_s, (std::vector<double>{0.5, 0.1, 0.3}));  // in the order they were taken
}

TEST(BenchStatistics, MedianOfAnEvenCountIsTheMeanOfTheMiddleTwo) {
  const Timing t = summarize({0.4, 0.1, 0.2, 0.8});
  EXPECT_EQ(t.min_s, 0.1);
  EXPECT_DOUBLE_EQ(t.median_s, 0.3);
}

TEST(BenchStatistics, OneRunIsItsOwnMinimumAndMedian) {
  const Timing t = summarize({0.25});
  EXPECT_EQ(t.min_s, 0.25);
  EXPECT_EQ(t.median_s, 0.25);
}

TEST(BenchStatistics, NoRunIsRefused) { EXPECT_THROW(summarize({}), Error); }

TEST(BenchStatistics, TimeRunsWarmsUpOnceThenRunsAtLeastOnce) {
  int calls = 0;
  const auto count = [&] { ++calls; };
  Timing t = time_runs(count, 3);
  EXPECT_EQ(calls, 4);  // warm-up + 3
  ASSERT_EQ(t.runs_s.size(), 3u);
  for (double s : t.runs_s) EXPECT_GE(s, t.min_s);
  EXPECT_LE(t.min_s, t.median_s);

  calls = 0;
  t = time_runs(count, 0, false);
  EXPECT_EQ(calls, 1);  // no warm-up; at least one timed run
  EXPECT_EQ(t.runs_s.size(), 1u);
}

}  // namespace
}  // namespace zebra::bench
