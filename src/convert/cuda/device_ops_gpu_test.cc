// The GPU NaN/Inf scan against the CPU one (FirstNonFinite, the reference) on random data with
// planted non-finite values: chunk boundaries, unaligned views, every dtype, many tensors at once.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "convert/cuda/device_ops.h"
#include "convert/finite_check.h"

namespace weightsync {
namespace {

TEST(DeviceOpsGpu, NonFiniteScanMatchesTheCpuScan) {
  if (!CudaConversionAvailable().ok()) GTEST_SKIP() << "skipped: no CUDA device";
  std::mt19937_64 random(7);
  struct Case {
    DType dtype;
    int64_t count;
    int64_t offset;  // elements into the allocation: unaligned views take the scalar path
    std::vector<int64_t> planted;
  };
  const int64_t chunk = int64_t{1} << 18;
  std::vector<Case> cases = {
      {DType::kBF16, 3 * chunk + 5, 0, {chunk, 2 * chunk + 3}},
      {DType::kBF16, 1000, 1, {999}},
      {DType::kF16, chunk, 0, {}},
      {DType::kF32, chunk + 17, 0, {chunk + 16}},
      {DType::kF32, 4099, 3, {7, 4000}},
      {DType::kBF16, 0, 0, {}},
  };
  // Many bad values, in every lane of every thread's unrolled step: the lowest must win.
  Case dense{DType::kBF16, 2 * chunk, 0, {}};
  for (int64_t i = 5000; i < 2 * chunk; i += 37) dense.planted.push_back(i);
  cases.push_back(dense);
  Case dense32{DType::kF32, chunk, 0, {}};
  for (int64_t i = 70001; i < chunk; i += 1023) dense32.planted.push_back(i);
  cases.push_back(dense32);
  for (int i = 0; i < 200; ++i) cases.push_back({DType::kBF16, 2048 * 7, 0, {}});
  cases[60].planted = {13};  // one of many small tensors
  std::vector<std::vector<uint8_t>> host;
  std::vector<void*> device;
  std::vector<DeviceElements> tensors;
  for (const Case& c : cases) {
    const size_t size = DTypeSize(c.dtype);
    std::vector<uint8_t> bytes((c.count + c.offset) * size);
    for (auto& b : bytes) b = static_cast<uint8_t>(random() & 0x3f);  // finite everywhere
    for (int64_t p : c.planted) {
      uint8_t* at = bytes.data() + (c.offset + p) * size;
      if (c.dtype == DType::kF32) {
        at[2] |= 0x80, at[3] = 0x7f;  // exponent all ones
      } else if (c.dtype == DType::kBF16) {
        at[0] |= 0x80, at[1] = 0xff;
      } else {
        at[1] = 0x7c;
      }
    }
    auto allocated = DeviceAlloc(bytes.size());
    ASSERT_TRUE(allocated.ok()) << allocated.status().ToString();
    ASSERT_TRUE(CopyHostToDevice(*allocated, bytes.data(), bytes.size()).ok());
    device.push_back(*allocated);
    tensors.push_back({static_cast<char*>(*allocated) + c.offset * size, c.dtype, c.count});
    host.push_back(std::move(bytes));
  }
  auto found = FirstNonFiniteOnDevice(tensors, nullptr);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  for (size_t t = 0; t < cases.size(); ++t) {
    const Case& c = cases[t];
    const int64_t expected =
        FirstNonFinite(host[t].data() + c.offset * DTypeSize(c.dtype), c.dtype, c.count);
    EXPECT_EQ((*found)[t], expected) << "tensor " << t;
  }
  for (void* d : device) DeviceFree(d);
}

}  // namespace
}  // namespace weightsync
