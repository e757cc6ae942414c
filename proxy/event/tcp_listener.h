#pragma once

// Accepts connections on a listening socket that the main thread created and bound (so binding
// errors surface where a config change can still be rejected as a whole). Each worker has its own
// SO_REUSEPORT socket for the same address and its own TcpListener.
//
// Accept runs accept4() in batches on readiness. When the process runs out of descriptors
// (EMFILE/ENFILE) the listener stops polling and backs off (10 ms doubling to 1 s): pending
// connections wait in the kernel's backlog instead of spinning the loop.

#include <uv.h>

#include <memory>

#include "absl/functional/any_invocable.h"
#include "proxy/event/dispatcher.h"

namespace remora::event {

class UvDispatcher;

class TcpListener {
 public:
  // Called once per accepted connection with a non-blocking, close-on-exec fd the callee owns.
  using AcceptCallback = absl::AnyInvocable<void(int fd)>;
  // Called with errno for each accept() failure other than EAGAIN/EINTR/ECONNABORTED.
  using ErrorCallback = absl::AnyInvocable<void(int err)>;

  // Takes ownership of `fd` (closes it on destruction).
  TcpListener(UvDispatcher& dispatcher, int fd, AcceptCallback on_accept,
              ErrorCallback on_error = nullptr);
  ~TcpListener();

  // Stops accepting; the socket closes, so new connects to a port no other socket serves are
  // refused.
  void Close();
  // The process is short of descriptors (seen elsewhere): stop accepting for the current back-off,
  // at least kPressurePause, as if accept() itself had failed with EMFILE.
  void PauseForPressure();
  static constexpr absl::Duration kPressurePause = absl::Milliseconds(100);

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void AcceptBatch();
  void StartPolling();
  void StopPolling();
  void Pause(absl::Duration at_least);

  UvDispatcher& dispatcher_;
  int fd_;
  uv_poll_t* poll_ = nullptr;
  AcceptCallback on_accept_;
  ErrorCallback on_error_;
  std::unique_ptr<Timer> backoff_timer_;
  absl::Duration backoff_ = absl::Milliseconds(10);
  absl::Time last_pause_ = absl::InfinitePast();
};

}  // namespace remora::event
