#include "control/wire.h"

#include <gtest/gtest.h>

#include <random>

#include "control/store_protocol.h"

namespace weightsync::control {
namespace {

StoreRequest RandomRequest(std::mt19937& rng) {
  static constexpr MessageType kOps[] = {
      MessageType::kSet,           MessageType::kGet,    MessageType::kWait, MessageType::kAdd,
      MessageType::kCompareAndSet, MessageType::kDelete, MessageType::kList};
  auto random_string = [&](size_t max) {
    std::string s(rng() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  };
  StoreRequest request;
  request.op = kOps[rng() % std::size(kOps)];
  request.key = "k" + random_string(16);
  switch (request.op) {
    case MessageType::kSet:
      request.value = random_string(64);
      request.flags = static_cast<uint8_t>(rng() % 2);
      break;
    case MessageType::kWait:
      request.number = rng() % 100000;
      break;
    case MessageType::kAdd:
      request.number = static_cast<int64_t>(rng()) - (1ll << 31);
      break;
    case MessageType::kCompareAndSet:
      if (rng() % 2) request.expected = random_string(32);
      request.value = random_string(32);
      break;
    default:
      break;
  }
  return request;
}

void ExpectSameRequest(const StoreRequest& a, const StoreRequest& b) {
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.expected, b.expected);
  EXPECT_EQ(a.number, b.number);
  EXPECT_EQ(a.flags, b.flags);
}

TEST(Wire, WriterReaderRoundTrip) {
  WireWriter w;
  w.U8(7).U16(0xbeef).U32(0xdeadbeef).U64(1ull << 60).I64(-5).Bytes("hello").Raw("xy");
  WireReader r(w.data());
  EXPECT_EQ(r.U8().value(), 7);
  EXPECT_EQ(r.U16().value(), 0xbeef);
  EXPECT_EQ(r.U32().value(), 0xdeadbeefu);
  EXPECT_EQ(r.U64().value(), 1ull << 60);
  EXPECT_EQ(r.I64().value(), -5);
  EXPECT_EQ(r.Bytes(5).value(), "hello");
  EXPECT_EQ(r.Raw(2).value(), "xy");
  EXPECT_TRUE(r.ExpectEnd().ok());
  EXPECT_EQ(r.U8().status().code(), StatusCode::kDataLoss);
}

TEST(Wire, ReaderRefusesOversizedAndTruncatedFields) {
  std::string data = WireWriter().Bytes("0123456789").Take();
  EXPECT_EQ(WireReader(data).Bytes(9).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(WireReader(data.substr(0, 8)).Bytes(100).status().code(), StatusCode::kDataLoss);
  // A length field claiming 4 GiB must fail on bounds, not allocate.
  std::string huge = WireWriter().U32(0xffffffff).Take();
  EXPECT_EQ(WireReader(huge).Bytes(SIZE_MAX).status().code(), StatusCode::kDataLoss);
}

TEST(Wire, HeaderValidation) {
  std::string frame = EncodeFrame(MessageType::kGet, "abc");
  EXPECT_TRUE(DecodeFrame(frame, 100).ok());

  std::string bad_magic = frame;
  bad_magic[0] ^= 1;
  EXPECT_NE(DecodeFrame(bad_magic, 100).status().message().find("bad magic"), std::string::npos);

  std::string bad_version = frame;
  bad_version[4] = 9;
  EXPECT_NE(DecodeFrame(bad_version, 100).status().message().find("version 9"), std::string::npos);

  std::string bad_type = frame;
  bad_type[6] = 99;
  EXPECT_NE(DecodeFrame(bad_type, 100).status().message().find("unknown message type"),
            std::string::npos);

  Status oversized = DecodeFrame(frame, 2).status();
  EXPECT_EQ(oversized.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(oversized.message().find("control.max_message_size"), std::string::npos);

  EXPECT_EQ(DecodeFrame(frame.substr(0, frame.size() - 1), 100).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeFrame(frame.substr(0, 5), 100).status().code(), StatusCode::kDataLoss);
}

TEST(Wire, RequestsRoundTrip) {
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    StoreRequest request = RandomRequest(rng);
    auto frame = DecodeFrame(EncodeFrame(request.op, EncodeRequest(request)), 1 << 20);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    auto decoded = DecodeRequest(*frame, 1 << 20);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    ExpectSameRequest(request, *decoded);
  }
}

TEST(Wire, ResponsesAndBodiesRoundTrip) {
  StoreResponse response{StatusCode::kNotFound, "key x", EncodeValue("v")};
  auto frame = DecodeFrame(EncodeFrame(MessageType::kResponse, EncodeResponse(response)), 1024);
  auto decoded = DecodeResponse(*frame);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->code, StatusCode::kNotFound);
  EXPECT_EQ(decoded->message, "key x");
  EXPECT_EQ(DecodeValue(decoded->body, 10).value(), "v");
  EXPECT_EQ(DecodeInt(EncodeInt(-42)).value(), -42);
  EXPECT_TRUE(DecodeBool(EncodeBool(true)).value());
  CasResult cas{true, std::string("now")};
  EXPECT_EQ(DecodeCas(EncodeCas(cas), 10).value().current, "now");
  std::vector<KeyValue> list = {{"a", "1"}, {"b", ""}};
  EXPECT_EQ(DecodeList(EncodeList(list), 10).value(), list);
}

// Thousands of random and mutated messages through every decoder: none may crash, hang or
// allocate past the limits; every failure must be a Status.
TEST(Wire, DecodersSurviveMutatedMessages) {
  std::mt19937 rng(12345);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    StoreRequest request = RandomRequest(rng);
    std::string bytes = EncodeFrame(request.op, EncodeRequest(request));
    switch (rng() % 5) {
      case 0:  // flip a few bytes anywhere, header included
        for (int flips = 1 + rng() % 4; flips > 0; --flips) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
        }
        break;
      case 1:  // truncate
        bytes.resize(rng() % bytes.size());
        break;
      case 2:  // trailing junk
        bytes.append(1 + rng() % 16, static_cast<char>(rng()));
        break;
      case 3:  // pure noise
        bytes.assign(rng() % 64, '\0');
        for (char& c : bytes) c = static_cast<char>(rng());
        break;
      default:  // corrupt a payload length field while keeping the frame length consistent
        if (bytes.size() >= kFrameHeaderSize + 4) {
          bytes[kFrameHeaderSize + rng() % 4] = static_cast<char>(rng());
        }
        break;
    }
    auto frame = DecodeFrame(bytes, 4096);
    if (!frame.ok()) {
      ++refused;
      continue;
    }
    auto decoded = DecodeRequest(*frame, 4096);
    decoded.ok() ? ++accepted : ++refused;
    // The same bytes as a response and as each body kind.
    Frame as_response{MessageType::kResponse, frame->payload};
    (void)DecodeResponse(as_response);
    (void)DecodeList(frame->payload, 4096);
    (void)DecodeCas(frame->payload, 4096);
    (void)DecodeValue(frame->payload, 4096);
    (void)DecodeInt(frame->payload);
    (void)DecodeBool(frame->payload);
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 100);  // some mutations leave a valid message; they must still decode
}

}  // namespace
}  // namespace weightsync::control
