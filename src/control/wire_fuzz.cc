// libFuzzer target for everything that decodes bytes a peer sent: the frame header and frame,
// every store request, responses and every response body. Any input must produce a value or a
// Status: no crash, no out-of-bounds read, no allocation beyond the limits.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DWEIGHTSYNC_BUILD_FUZZ=ON -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF
//   ninja -C build-fuzz control_wire_fuzz && build-fuzz/src/control/control_wire_fuzz
//   -max_total_time=60
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/store_protocol.h"
#include "control/wire.h"

using namespace weightsync::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint32_t kLimit = 1 << 16;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)DecodeFrameHeader(bytes.substr(0, std::min(size, kFrameHeaderSize)), kLimit);
  auto frame = DecodeFrame(bytes, kLimit);
  if (frame.ok()) {
    (void)DecodeRequest(*frame, kLimit);
    (void)DecodeResponse(*frame);
  }
  // Bodies are decoded from the raw input too, so the fuzzer need not find a valid header first.
  (void)DecodeList(bytes, kLimit);
  (void)DecodeCas(bytes, kLimit);
  (void)DecodeValue(bytes, kLimit);
  (void)DecodeInt(bytes);
  (void)DecodeBool(bytes);
  for (uint16_t type : {10, 11, 12, 13, 14, 15, 16}) {
    (void)DecodeRequest(Frame{static_cast<MessageType>(type), std::string(bytes)}, kLimit);
  }
  return 0;
}
