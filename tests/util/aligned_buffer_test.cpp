#include "zebra/util/aligned_buffer.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace zebra {
namespace {

// ParameterSet keeps pointers into its buffer: copying a model's weights into another of the same shape
// (the bf16 bench, evaluation copies) must not move the storage.
TEST(AlignedBuffer, CopyOfSameSizeKeepsStorage) {
  AlignedBuffer<float> a(1000), b(1000);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
  const float* before = b.data();
  b = a;
  EXPECT_EQ(b.data(), before);
  EXPECT_EQ(b[999], 999.0f);
}

TEST(AlignedBuffer, CopyOfOtherSizeResizesAndCopies) {
  AlignedBuffer<float> a(300), b(10);
  a[299] = 7.0f;
  b = a;
  ASSERT_EQ(b.size(), 300u);
  EXPECT_EQ(b[299], 7.0f);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0u);
}

}  // namespace
}  // namespace zebra
