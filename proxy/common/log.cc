#include "proxy/common/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace remora::log {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

void SetLevel(Level l) { g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

const char* LevelName(Level l) {
  switch (l) {
    case Level::kTrace:
      return "trace";
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "?";
}

bool ParseLevel(absl::string_view name, Level* out) {
  for (int i = 0; i <= static_cast<int>(Level::kOff); ++i) {
    if (name == LevelName(static_cast<Level>(i))) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

void Write(Level l, absl::string_view message) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   LevelName(l), " ", message, "\n");
  // One write(2) per line keeps lines whole across threads; a short write to stderr is ignored.
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
}

}  // namespace remora::log
