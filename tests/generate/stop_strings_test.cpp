#include "zebra/generate/stop_strings.hpp"

#include <gtest/gtest.h>

namespace zebra {
namespace {

TEST(StopStringFilter, HoldsBackPossibleStopsAndCuts) {
  StopStringFilter f({"\nUser:", "END"});
  EXPECT_EQ(f.update("Hello"), "Hello");
  EXPECT_EQ(f.update("Hello wor"), " wor");
  EXPECT_EQ(f.update("Hello world\nUs"), "ld");  // "\nUs" may start "\nUser:"
  EXPECT_EQ(f.update("Hello world\nUsually"), "\nUsually");
  EXPECT_EQ(f.update("Hello world\nUsually E"), " ");  // "E" may start "END"
  EXPECT_EQ(f.update("Hello world\nUsually EN"), "");
  EXPECT_EQ(f.update("Hello world\nUsually END and more"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.update("anything"), "");

  StopStringFilter g({});
  EXPECT_EQ(g.update("caf\xC3"), "caf");  // an incomplete UTF-8 character waits
  EXPECT_EQ(g.update("caf\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(g.flush("caf\xC3\xA9!"), "!");
}

TEST(StopStringFilter, FindsAStopStringThatSpansUpdatesAndTheEarliestOfSeveral) {
  StopStringFilter f({"xyz", "yz!"});
  EXPECT_EQ(f.update("abx"), "ab");
  EXPECT_EQ(f.update("abxy"), "");
  EXPECT_EQ(f.update("abxyz!"), "");  // "xyz" begins before "yz!"
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.emitted(), 2u);
  EXPECT_EQ(f.flush("abxyz!"), "");
}

}  // namespace
}  // namespace zebra
