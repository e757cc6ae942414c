#pragma once

// A process signal delivered as a callback on a UvDispatcher's loop (libuv turns the async signal
// into a loop event, so the callback may do anything). Destroying the object stops listening.

#include <uv.h>

#include "absl/functional/any_invocable.h"

namespace remora::event {

class UvDispatcher;

class SignalHandler {
 public:
  SignalHandler(UvDispatcher& dispatcher, int signum, absl::AnyInvocable<void()> cb);
  ~SignalHandler();
  SignalHandler(const SignalHandler&) = delete;
  SignalHandler& operator=(const SignalHandler&) = delete;

 private:
  uv_signal_t* handle_;
  absl::AnyInvocable<void()> cb_;
};

}  // namespace remora::event
