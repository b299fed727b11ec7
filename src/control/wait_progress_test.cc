// Long waits say what they wait for: lines at the progress interval naming the missing
// participants or the awaited key (checked through the log sink).
#include "control/wait_progress.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "control/collective.h"
#include "control/test_util.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

using testing::ConnectTestClient;
using testing::Contains;
using testing::StartTestStore;

constexpr auto kFastInterval = std::chrono::milliseconds(150);

// Collects every log line while alive.
class CapturedLog {
 public:
  CapturedLog() { SetLogSink(&CapturedLog::Sink, this); }
  ~CapturedLog() { SetLogSink(nullptr, nullptr); }

  std::vector<std::string> Lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  static void Sink(LogLevel, std::string_view message, void* self) {
    auto* log = static_cast<CapturedLog*>(self);
    std::lock_guard lock(log->mutex_);
    log->lines_.emplace_back(message);
  }
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

int CountContaining(const std::vector<std::string>& lines, const std::string& part) {
  int n = 0;
  for (const auto& line : lines) n += Contains(line, part) ? 1 : 0;
  return n;
}

TEST(WaitProgressTest, CollectiveWaitNamesTheMissingParticipants) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  CollectiveContext context;
  context.client = client.get();
  context.job_id = "progress";
  context.me = {Role::kTrainer, 0};
  context.everyone = {{Role::kTrainer, 0}, {Role::kInference, 0}, {Role::kInference, 1}};
  context.progress_interval = kFastInterval;
  CapturedLog log;

  auto result = ArriveAndWait(context, "barrier", "setup", 1, "", false, DeadlineIn(1.0));
  ASSERT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
  auto lines = log.Lines();
  int reports = CountContaining(lines, "still waiting after");
  EXPECT_GE(reports, 3) << "one line per 150 ms over 1 s";
  EXPECT_EQ(CountContaining(lines, "missing inference ranks [0, 1] (1 of 3 arrived)"), reports)
      << (lines.empty() ? "" : lines[0]);
  EXPECT_EQ(CountContaining(lines, "barrier 'setup' generation 1 (trainer 0)"), reports);
}

TEST(WaitProgressTest, NoLineBeforeTheFirstInterval) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  CollectiveContext context;
  context.client = client.get();
  context.job_id = "quiet";
  context.me = {Role::kTrainer, 0};
  context.everyone = {{Role::kTrainer, 0}};
  CapturedLog log;
  ASSERT_TRUE(ArriveAndWait(context, "barrier", "alone", 1, "", false, DeadlineIn(5)).ok());
  EXPECT_EQ(CountContaining(log.Lines(), "still waiting"), 0);
}

TEST(WaitProgressTest, KeyWaitNamesTheKeyAndReturnsTheValue) {
  auto server = StartTestStore();
  auto waiter = ConnectTestClient(server->address());
  auto setter = ConnectTestClient(server->address());
  CapturedLog log;
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_TRUE(setter->Set("offer/1", "7", DeadlineIn(5)).ok());
  });
  auto value = WaitWithProgress(*waiter, "offer/1", DeadlineIn(10), "job j: the trainer's offer",
                                kFastInterval);
  late.join();
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, "7");
  auto lines = log.Lines();
  EXPECT_GE(CountContaining(lines, "job j: the trainer's offer: still waiting after"), 2);
  EXPECT_GE(CountContaining(lines, "key 'offer/1' is not set yet"), 2);
}

TEST(WaitProgressTest, KeyWaitEndsAtItsDeadline) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  const auto start = Clock::now();
  auto value = WaitWithProgress(*client, "never", DeadlineIn(0.5), "nothing", kFastInterval);
  EXPECT_EQ(value.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace weightsync::control
