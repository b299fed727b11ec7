// Logging through a callback the host process can replace (no global logger initialisation).
//
// The default sink writes one line per message to stderr. A host (a Python trainer, an inference
// server) installs its own sink with SetLogSink to route messages into its logging system.
// Thread-safe: messages may be emitted from any thread; the sink is called under a mutex.
#pragma once

#include <string_view>

#include "weightsync/status.h"

namespace weightsync {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

using LogSink = void (*)(LogLevel level, std::string_view message, void* user_data);

// Replaces the sink; nullptr restores the default stderr sink.
void SetLogSink(LogSink sink, void* user_data);
// Messages below this level are dropped before formatting reaches the sink.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
Result<LogLevel> ParseLogLevel(std::string_view name);

void LogMessage(LogLevel level, std::string_view message);

template <typename... Parts>
void Log(LogLevel level, const Parts&... parts) {
  if (level < GetLogLevel()) return;
  LogMessage(level, StrCat(parts...));
}

}  // namespace weightsync
