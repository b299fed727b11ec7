#include "weightsync/tensor.h"

#include <gtest/gtest.h>

#include <vector>

namespace weightsync {
namespace {

TEST(TensorView, SelectAndNarrowAreViews) {
  std::vector<uint16_t> data(2 * 3 * 4);
  TensorView t = TensorView::Contiguous(data.data(), {2, 3, 4}, DType::kBF16);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 48);
  EXPECT_TRUE(t.is_contiguous());

  auto expert = t.Select(1);
  ASSERT_TRUE(expert.ok());
  EXPECT_EQ(expert->data, data.data() + 12);
  EXPECT_EQ(expert->shape, (Shape{3, 4}));
  EXPECT_EQ(expert->stride(0), 4);

  auto rows = expert->Narrow(1, 2);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->data, data.data() + 16);
  EXPECT_EQ(rows->ToString(), "bfloat16[2, 4] cpu");
}

TEST(TensorView, OutOfRangeIsAnError) {
  std::vector<float> data(6);
  TensorView t = TensorView::Contiguous(data.data(), {2, 3}, DType::kF32);
  EXPECT_EQ(t.Select(2).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(t.Narrow(1, 2).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(t.Narrow(-1, 1).status().code(), StatusCode::kOutOfRange);
}

TEST(TensorView, NonContiguousStrides) {
  std::vector<float> data(12);
  TensorView t;
  t.data = data.data();
  t.shape = {3, 2};
  t.strides = {4, 1};  // rows padded to 4 elements
  EXPECT_FALSE(t.is_contiguous());
}

TEST(DType, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(DType::kF8E8M0); ++i) {
    DType d = static_cast<DType>(i);
    EXPECT_EQ(DTypeFromSafetensorsName(DTypeSafetensorsName(d)), d);
    EXPECT_EQ(DTypeFromTorchName(DTypeTorchName(d)), d);
  }
  EXPECT_EQ(DTypeFromTorchName("torch.bfloat16"), DType::kBF16);
  EXPECT_FALSE(DTypeFromSafetensorsName("F4").has_value());
  EXPECT_EQ(DTypeSize(DType::kF8E4M3), 1u);
}

}  // namespace
}  // namespace weightsync
