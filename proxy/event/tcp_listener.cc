#include "proxy/event/tcp_listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/common/log.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/network/address.h"

namespace remora::event {

TcpListener::TcpListener(UvDispatcher& dispatcher, int fd, AcceptCallback on_accept,
                         ErrorCallback on_error)
    : dispatcher_(dispatcher),
      fd_(fd),
      on_accept_(std::move(on_accept)),
      on_error_(std::move(on_error)) {
  backoff_timer_ = dispatcher_.CreateTimer([this] { StartPolling(); });
  StartPolling();
}

TcpListener::~TcpListener() { Close(); }

void TcpListener::StartPolling() {
  if (fd_ < 0 || poll_ != nullptr) return;
  poll_ = new uv_poll_t;
  int rc = uv_poll_init_socket(dispatcher_.loop(), poll_, fd_);
  if (rc != 0) {
    // Never initialised, so not a handle libuv knows: free it directly and retry later.
    delete poll_;
    poll_ = nullptr;
    LOG_WARN("listener poll setup failed: %s; retrying in %s", uv_strerror(rc),
             absl::FormatDuration(backoff_));
    Pause(absl::ZeroDuration());
    return;
  }
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, &TcpListener::OnPoll);
}

void TcpListener::OnPoll(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<TcpListener*>(handle->data);
  if (self != nullptr && status == 0) self->AcceptBatch();
}

void TcpListener::AcceptBatch() {
  // A bounded batch keeps one busy listener from starving established connections.
  for (int i = 0; i < 64 && fd_ >= 0; ++i) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      // One accept is no sign the shortage is over (a single freed descriptor gets it): the
      // back-off only resets after a quiet second.
      if (dispatcher_.Now() - last_pause_ > absl::Seconds(1)) backoff_ = absl::Milliseconds(10);
      on_accept_(fd);
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    const int err = errno;
    if (on_error_) on_error_(err);
    if (network::IsLocalResourceShortage(err)) {
      LOG_WARN("accept: %s; pausing accepts for %s", std::strerror(err),
               absl::FormatDuration(backoff_));
      Pause(absl::ZeroDuration());
      return;
    }
    LOG_WARN("accept: %s", std::strerror(err));
    return;
  }
}

void TcpListener::PauseForPressure() {
  if (fd_ < 0) return;
  // Also when already paused by an accept EMFILE: the longer pause wins.
  LOG_WARN("out of descriptors for upstream connections; pausing accepts for %s",
           absl::FormatDuration(std::max(backoff_, kPressurePause)));
  Pause(kPressurePause);
}

void TcpListener::StopPolling() {
  if (poll_ == nullptr) return;
  uv_poll_stop(poll_);
  poll_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
}

void TcpListener::Pause(absl::Duration at_least) {
  StopPolling();
  absl::Duration wait = std::max(backoff_, at_least);
  backoff_timer_->Enable(wait);
  backoff_ = std::min(wait * 2, absl::Seconds(1));
  last_pause_ = dispatcher_.Now();
}

void TcpListener::Close() {
  backoff_timer_->Disable();
  StopPolling();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace remora::event
