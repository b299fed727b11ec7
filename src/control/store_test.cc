#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "control/auth.h"
#include "control/socket.h"
#include "control/store_client.h"
#include "control/store_server.h"
#include "control/test_util.h"
#include "control/wire.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

using testing::ConnectTestClient;
using testing::Contains;
using testing::StartTestStore;
using testing::TestClientOptions;

// Captures log lines so tests can check what the server reported.
class LogCapture {
 public:
  LogCapture() { SetLogSink(&LogCapture::Sink, this); }
  ~LogCapture() { SetLogSink(nullptr, nullptr); }
  std::string Text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  static void Sink(LogLevel, std::string_view message, void* self) {
    auto* capture = static_cast<LogCapture*>(self);
    std::lock_guard lock(capture->mu_);
    capture->text_.append(message).append("\n");
  }
  std::mutex mu_;
  std::string text_;
};

UniqueFd RawConnect(const StoreServer& server) {
  auto fd = ConnectOnce(ParseHostPort(server.address()).value(), DeadlineIn(2));
  EXPECT_TRUE(fd.ok()) << fd.status().ToString();
  return fd.ok() ? std::move(*fd) : UniqueFd();
}

UniqueFd RawAuthenticated(const StoreServer& server) {
  UniqueFd fd = RawConnect(server);
  Status status = ClientHandshake(fd.get(), testing::kTestToken, DeadlineIn(2));
  EXPECT_TRUE(status.ok()) << status.ToString();
  return fd;
}

// True when the server closes `fd` within `seconds` (it may send a refusal first).
bool ClosedByServer(int fd, double seconds) {
  Deadline deadline = DeadlineIn(seconds);
  char buffer[256];
  while (WaitReadable(fd, deadline).ok()) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return true;
  }
  return false;
}

TEST(Store, SetGetDeleteList) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  ASSERT_TRUE(client->Set("job/a", "1", DeadlineIn(2)).ok());
  ASSERT_TRUE(client->Set("job/b", std::string("\0bin", 4), DeadlineIn(2)).ok());
  ASSERT_TRUE(client->Set("other/c", "3", DeadlineIn(2)).ok());
  EXPECT_EQ(client->Get("job/a", DeadlineIn(2)).value(), "1");
  EXPECT_EQ(client->Get("job/b", DeadlineIn(2)).value(), std::string("\0bin", 4));

  auto missing = client->Get("job/zzz", DeadlineIn(2));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), server->address()));
  EXPECT_TRUE(Contains(missing.status().message(), "job/zzz"));

  auto list = client->List("job/", DeadlineIn(2)).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].key, "job/a");
  EXPECT_EQ(list[1].key, "job/b");
  EXPECT_EQ(client->List("", DeadlineIn(2)).value().size(), 3u);

  EXPECT_TRUE(client->Delete("job/a", DeadlineIn(2)).value());
  EXPECT_FALSE(client->Delete("job/a", DeadlineIn(2)).value());
  EXPECT_EQ(client->Get("job/a", DeadlineIn(2)).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(client->Set("job/a", "1", DeadlineIn(2)).ok());
  ASSERT_TRUE(client->Set("joc", "next in order, not under the prefix", DeadlineIn(2)).ok());
  EXPECT_EQ(client->DeletePrefix("job/", DeadlineIn(2)).value(), 2);
  EXPECT_EQ(client->DeletePrefix("job/", DeadlineIn(2)).value(), 0);
  EXPECT_EQ(client->List("", DeadlineIn(2)).value().size(), 2u);  // joc and other/c remain
  EXPECT_EQ(client->DeletePrefix("", DeadlineIn(2)).status().code(), StatusCode::kInvalidArgument);
}

TEST(Store, AddIsAtomicAcrossClients) {
  auto server = StartTestStore();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto client = ConnectTestClient(server->address());
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(client->Add("counter", 2, DeadlineIn(5)).ok());
    });
  }
  for (auto& t : threads) t.join();
  auto client = ConnectTestClient(server->address());
  EXPECT_EQ(client->Add("counter", 0, DeadlineIn(2)).value(), 800);
  EXPECT_EQ(client->Add("counter", -801, DeadlineIn(2)).value(), -1);
  ASSERT_TRUE(client->Set("text", "abc", DeadlineIn(2)).ok());
  EXPECT_EQ(client->Add("text", 1, DeadlineIn(2)).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(client->Set("big", std::to_string(INT64_MAX), DeadlineIn(2)).ok());
  EXPECT_EQ(client->Add("big", 1, DeadlineIn(2)).status().code(), StatusCode::kOutOfRange);
}

TEST(Store, CompareAndSet) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  auto created = client->CompareAndSet("k", std::nullopt, "first", DeadlineIn(2)).value();
  EXPECT_TRUE(created.swapped);
  auto refused = client->CompareAndSet("k", std::nullopt, "second", DeadlineIn(2)).value();
  EXPECT_FALSE(refused.swapped);
  EXPECT_EQ(refused.current, "first");
  auto wrong = client->CompareAndSet("k", "nope", "third", DeadlineIn(2)).value();
  EXPECT_FALSE(wrong.swapped);
  auto swapped = client->CompareAndSet("k", "first", "fourth", DeadlineIn(2)).value();
  EXPECT_TRUE(swapped.swapped);
  EXPECT_EQ(client->Get("k", DeadlineIn(2)).value(), "fourth");
  auto absent = client->CompareAndSet("absent", "x", "y", DeadlineIn(2)).value();
  EXPECT_FALSE(absent.swapped);
  EXPECT_FALSE(absent.current.has_value());
}

TEST(Store, WaitIsWokenBySet) {
  auto server = StartTestStore();
  auto waiter = ConnectTestClient(server->address());
  auto setter = ConnectTestClient(server->address());
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(setter->Set("ready", "yes", DeadlineIn(2)).ok());
  });
  auto start = Clock::now();
  auto value = waiter->Wait("ready", DeadlineIn(10));
  later.join();
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, "yes");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(Store, WaitDeadlineExpires) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  auto start = Clock::now();
  auto value = client->Wait("never", DeadlineIn(0.3));
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(value.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(value.status().message(), "never"));
  EXPECT_GE(elapsed, 0.29);
  EXPECT_LT(elapsed, 1.5);
  // The connection is still good after a timed-out wait.
  EXPECT_TRUE(client->Set("after", "ok", DeadlineIn(2)).ok());
}

TEST(Store, WrongTokenIsRefusedAndLogged) {
  LogCapture log;
  auto server = StartTestStore();
  auto client =
      StoreClient::Connect(TestClientOptions(server->address(), "wrong-token"), DeadlineIn(5));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(Contains(client.status().message(), "authentication failed"));
  EXPECT_TRUE(Contains(client.status().message(), server->address()));
  // The server logs the refusal with the peer's address (from its own thread; give it a moment).
  for (int i = 0; i < 100 && !Contains(log.Text(), "authentication failed for peer 127.0.0.1:");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(Contains(log.Text(), "authentication failed for peer 127.0.0.1:")) << log.Text();
}

TEST(Store, MissingTokenIsRefused) {
  auto server = StartTestStore();
  auto client = StoreClient::Connect(TestClientOptions(server->address(), ""), DeadlineIn(5));
  ASSERT_FALSE(client.ok());
  EXPECT_TRUE(Contains(client.status().message(), "authentication failed"));
  // And a store without a token refuses to start.
  StoreServerOptions options;
  EXPECT_EQ(StoreServer::Start(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(Store, FakeStoreIsDetected) {
  // A listener that speaks the handshake but does not know the token.
  auto listener = Listen(HostPort{"127.0.0.1", 0}, 4).value();
  uint16_t port = LocalPort(listener.get()).value();
  std::thread fake([&] {
    UniqueFd fd(::accept(listener.get(), nullptr, nullptr));
    ASSERT_TRUE(
        SendFrame(fd.get(), MessageType::kServerHello, std::string(kNonceSize, 'n'), DeadlineIn(2))
            .ok());
    ASSERT_TRUE(ReceiveFrame(fd.get(), kMaxHandshakePayload, DeadlineIn(2)).ok());
    ASSERT_TRUE(
        SendFrame(fd.get(), MessageType::kServerProof, std::string(kMacSize, 'm'), DeadlineIn(2))
            .ok());
  });
  auto client = StoreClient::Connect(TestClientOptions(StrCat("127.0.0.1:", port)), DeadlineIn(3));
  fake.join();
  ASSERT_FALSE(client.ok());
  EXPECT_TRUE(Contains(client.status().message(), "authentication failed"));
  EXPECT_TRUE(Contains(client.status().message(), "did not prove"));
}

TEST(Store, MalformedMessagesCloseOnlyThatConnection) {
  auto server = StartTestStore(/*io_timeout_s=*/0.3);
  auto good = ConnectTestClient(server->address());
  ASSERT_TRUE(good->Set("alive", "1", DeadlineIn(2)).ok());

  {  // garbage before authentication
    UniqueFd fd = RawConnect(*server);
    ASSERT_TRUE(WriteAll(fd.get(), std::string(64, 'Z'), DeadlineIn(1)).ok());
    EXPECT_TRUE(ClosedByServer(fd.get(), 3));
  }
  {  // garbage after authentication
    UniqueFd fd = RawAuthenticated(*server);
    ASSERT_TRUE(WriteAll(fd.get(), "GET / HTTP/1.1\r\n\r\n", DeadlineIn(1)).ok());
    EXPECT_TRUE(ClosedByServer(fd.get(), 3));
  }
  {  // oversized: a header claiming more than control.max_message_size
    UniqueFd fd = RawAuthenticated(*server);
    std::string header = EncodeFrame(MessageType::kSet, "").substr(0, 8);
    header += WireWriter().U32(0xfffffff0u).data();
    ASSERT_TRUE(WriteAll(fd.get(), header, DeadlineIn(1)).ok());
    EXPECT_TRUE(ClosedByServer(fd.get(), 3));
  }
  {  // truncated: the header promises 100 bytes, 10 arrive, then the sender stalls
    UniqueFd fd = RawAuthenticated(*server);
    std::string frame = EncodeFrame(MessageType::kSet, std::string(100, 'x'));
    ASSERT_TRUE(WriteAll(fd.get(), frame.substr(0, kFrameHeaderSize + 10), DeadlineIn(1)).ok());
    EXPECT_TRUE(ClosedByServer(fd.get(), 3));  // after control.io_timeout
  }
  {  // a well-framed payload that does not decode (trailing bytes)
    UniqueFd fd = RawAuthenticated(*server);
    std::string payload = WireWriter().Bytes("key").Raw("junk").Take();
    ASSERT_TRUE(SendFrame(fd.get(), MessageType::kGet, payload, DeadlineIn(1)).ok());
    EXPECT_TRUE(ClosedByServer(fd.get(), 3));
  }
  EXPECT_EQ(good->Get("alive", DeadlineIn(2)).value(), "1");
}

TEST(Store, SilentClientDoesNotBlockOthers) {
  // Other clients must not wait for the silent ones' handshake timeout (2 s) to pass.
  auto server = StartTestStore(/*io_timeout_s=*/2, /*handshake_timeout_s=*/2);
  UniqueFd silent = RawConnect(*server);
  UniqueFd silent_after_auth = RawAuthenticated(*server);
  auto start = Clock::now();
  auto client = ConnectTestClient(server->address());
  ASSERT_TRUE(client->Set("x", "y", DeadlineIn(1)).ok());
  EXPECT_EQ(client->Get("x", DeadlineIn(1)).value(), "y");
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
  // The one that never finished its handshake is dropped after control.connect_timeout.
  EXPECT_TRUE(ClosedByServer(silent.get(), 5));
}

TEST(Store, ServesManyConcurrentClients) {
  auto server = StartTestStore();
  constexpr int kClients = 64;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto client = ConnectTestClient(server->address());
      if (!client) return;
      // Each waits for its neighbour's key, so every client must be served concurrently.
      if (!client->Set(StrCat("k", i), StrCat(i), DeadlineIn(10)).ok()) return;
      auto value = client->Wait(StrCat("k", (i + 1) % kClients), DeadlineIn(10));
      if (value.ok() && *value == StrCat((i + 1) % kClients)) ok.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients);
}

TEST(Store, StopWakesWaitersWithAnError) {
  auto server = StartTestStore();
  std::vector<std::thread> threads;
  std::atomic<int> unavailable{0};
  std::atomic<int> connected{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto client = ConnectTestClient(server->address());
      connected.fetch_add(1);
      auto value = client->Wait("never", DeadlineIn(30));
      if (value.status().code() == StatusCode::kUnavailable) unavailable.fetch_add(1);
    });
  }
  while (connected.load() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto start = Clock::now();
  server->Stop();
  for (auto& t : threads) t.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(unavailable.load(), 4);
}

TEST(Store, EphemeralKeysVanishWithTheirConnection) {
  auto server = StartTestStore();
  auto observer = ConnectTestClient(server->address());
  {
    auto owner = ConnectTestClient(server->address());
    ASSERT_TRUE(owner->Set("live/a", "1", DeadlineIn(2), SetMode::kEphemeral).ok());
    ASSERT_TRUE(owner->Set("kept", "1", DeadlineIn(2)).ok());
    EXPECT_TRUE(observer->Get("live/a", DeadlineIn(2)).ok());
  }
  Status gone;
  for (int i = 0; i < 100; ++i) {
    gone = observer->Get("live/a", DeadlineIn(2)).status();
    if (gone.code() == StatusCode::kNotFound) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(gone.code(), StatusCode::kNotFound);
  EXPECT_TRUE(observer->Get("kept", DeadlineIn(2)).ok());
}

TEST(Store, ClientRetriesUntilTheStoreStarts) {
  auto probe = StartTestStore();
  uint16_t port = probe->port();
  probe.reset();
  std::unique_ptr<StoreServer> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    StoreServerOptions options;
    options.token = testing::kTestToken;
    options.port = port;
    auto started = StoreServer::Start(options);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server = std::move(*started);
  });
  auto client = StoreClient::Connect(TestClientOptions(StrCat("127.0.0.1:", port)), DeadlineIn(5));
  starter.join();
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE((*client)->Set("k", "v", DeadlineIn(2)).ok());
}

TEST(Store, ConnectGivesUpAtTheDeadline) {
  auto probe = StartTestStore();
  std::string address = probe->address();
  probe.reset();
  auto start = Clock::now();
  auto client = StoreClient::Connect(TestClientOptions(address), DeadlineIn(0.3));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(client.status().message(), address));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(Store, ReconnectsAfterTheConnectionDrops) {
  auto server = StartTestStore();
  uint16_t port = server->port();
  auto client = ConnectTestClient(server->address());
  ASSERT_TRUE(client->Set("k", "v", DeadlineIn(2)).ok());
  server.reset();
  EXPECT_FALSE(client->Get("k", DeadlineIn(0.5)).ok());
  StoreServerOptions options;
  options.token = testing::kTestToken;
  options.port = port;
  server = StoreServer::Start(options).value();
  EXPECT_EQ(client->Get("k", DeadlineIn(3)).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace weightsync::control
