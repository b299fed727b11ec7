#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace weightsync {
namespace {

void StderrSink(LogLevel level, std::string_view message, void*) {
  static constexpr char kLetters[] = {'D', 'I', 'W', 'E', '-'};
  std::fprintf(stderr, "[weightsync %c] %.*s\n", kLetters[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

struct SinkState {
  std::mutex mutex;
  LogSink sink = &StderrSink;
  void* user_data = nullptr;
};

SinkState& State() {
  static SinkState state;
  return state;
}

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

}  // namespace

void SetLogSink(LogSink sink, void* user_data) {
  SinkState& state = State();
  std::lock_guard lock(state.mutex);
  state.sink = sink ? sink : &StderrSink;
  state.user_data = sink ? user_data : nullptr;
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

Result<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning" || name == "warn") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  if (name == "off") return LogLevel::kOff;
  return InvalidArgument("unknown log level '", name, "' (debug, info, warning, error, off)");
}

void LogMessage(LogLevel level, std::string_view message) {
  if (level < GetLogLevel()) return;
  SinkState& state = State();
  std::lock_guard lock(state.mutex);
  state.sink(level, message, state.user_data);
}

}  // namespace weightsync
