#pragma once

// The one seam between remora's logic and its event loop. Everything that needs time, deferred work
// or cross-thread hand-off goes through a Dispatcher, so retry/backoff/breaker logic can run on the
// simulated one (sim_dispatcher.h) in unit tests without sleeping.
//
// Threading: a Dispatcher belongs to one thread (its loop's). Only Post() may be called from other
// threads. Everything else, and every callback it runs, happens on the owning thread.

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace remora::event {

// A one-shot timer owned by its creator. Destroying it cancels it. Re-enabling an enabled timer
// re-arms it.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void Enable(absl::Duration after) = 0;
  virtual void Disable() = 0;
  virtual bool Enabled() const = 0;
};

// Objects that may still be on the stack when their owner decides to destroy them (a connection
// closing from inside its own read callback) are handed to DeferredDelete() and freed at the end
// of the loop turn.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;

  // Thread-safe. Runs `cb` on this dispatcher's thread in a later loop turn, never inline, in
  // posting order. Posts made after Exit() may never run.
  virtual void Post(absl::AnyInvocable<void()> cb) = 0;

  virtual std::unique_ptr<Timer> CreateTimer(absl::AnyInvocable<void()> cb) = 0;

  // Frees `object` after the current callback returns (end of this loop turn).
  virtual void DeferredDelete(std::unique_ptr<DeferredDeletable> object) = 0;

  // Monotonic time, cached per loop turn (reading it is cheap; it does not advance inside a turn).
  virtual absl::Time Now() = 0;

  // True when called on the dispatcher's own thread.
  virtual bool IsCurrentThread() const = 0;
};

}  // namespace remora::event
