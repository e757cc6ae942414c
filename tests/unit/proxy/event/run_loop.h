#pragma once

// Turning a real UvDispatcher's loop in tests that drive sockets from the test thread.

#include <uv.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxy/event/uv_dispatcher.h"

namespace remora::event::testing {

// Turns the loop until `done()` or `timeout`; false on the timeout.
template <typename F>
bool RunUntil(UvDispatcher& dispatcher, F done, absl::Duration timeout = absl::Seconds(5)) {
  absl::Time end = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > end) return false;
    uv_run(dispatcher.loop(), UV_RUN_NOWAIT);
    absl::SleepFor(absl::Microseconds(100));
  }
  return true;
}

// Turns the loop for `d`.
inline void RunFor(UvDispatcher& dispatcher, absl::Duration d) {
  absl::Time end = absl::Now() + d;
  while (absl::Now() < end) uv_run(dispatcher.loop(), UV_RUN_NOWAIT);
}

}  // namespace remora::event::testing
