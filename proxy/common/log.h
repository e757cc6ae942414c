#pragma once

// Process-wide logging to stderr: one line per call, written with a single write(2) so lines from
// workers never interleave. The level is an atomic that POST /logging changes at run time.

#include <atomic>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace remora::log {

enum class Level : int { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

extern std::atomic<int> g_level;

inline bool Enabled(Level l) {
  return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed);
}
void SetLevel(Level l);
Level GetLevel();
// Parses "trace".."off"; false on an unknown name.
bool ParseLevel(absl::string_view name, Level* out);
const char* LevelName(Level l);

void Write(Level l, absl::string_view message);

}  // namespace remora::log

#define REMORA_LOG(level, ...)                                     \
  do {                                                             \
    if (::remora::log::Enabled(level)) {                           \
      ::remora::log::Write(level, ::absl::StrFormat(__VA_ARGS__)); \
    }                                                              \
  } while (0)
#define LOG_TRACE(...) REMORA_LOG(::remora::log::Level::kTrace, __VA_ARGS__)
#define LOG_DEBUG(...) REMORA_LOG(::remora::log::Level::kDebug, __VA_ARGS__)
#define LOG_INFO(...) REMORA_LOG(::remora::log::Level::kInfo, __VA_ARGS__)
#define LOG_WARN(...) REMORA_LOG(::remora::log::Level::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) REMORA_LOG(::remora::log::Level::kError, __VA_ARGS__)
