#pragma once

// A downstream connection as its worker sees it: something to drain and, at the deadline, to close.
// TCP sessions now, HTTP connection managers later. The worker keeps them in an intrusive list (no
// allocation per connection) so drain can reach every one.

#include <atomic>
#include <cstddef>

#include "proxy/event/dispatcher.h"

namespace remora::server {

class ConnectionList;

class ActiveConnection : public event::DeferredDeletable {
 public:
  // Drain has begun: finish in-flight work, take no new work. TCP: nothing to do (a stream has no
  // request boundary); HTTP will answer `Connection: close` / send GOAWAY.
  virtual void StartDrain() {}
  // The drain deadline passed, or the process is exiting: close now. The implementation unlinks
  // itself from its list and defers its own deletion.
  virtual void CloseNow() = 0;

 private:
  friend class ConnectionList;
  ActiveConnection* prev_ = nullptr;
  ActiveConnection* next_ = nullptr;
  ConnectionList* list_ = nullptr;
};

class ConnectionList {
 public:
  void Add(ActiveConnection* c);
  void Remove(ActiveConnection* c);  // no-op if not linked
  // Readable from any thread (drain polls it); written only by the owning worker.
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Calls fn on every connection; fn may Remove the one it is given.
  template <typename Fn>
  void ForEach(Fn fn) {
    for (ActiveConnection* c = head_; c != nullptr;) {
      ActiveConnection* next = c->next_;
      fn(c);
      c = next;
    }
  }

 private:
  ActiveConnection* head_ = nullptr;
  std::atomic<size_t> size_{0};
};

}  // namespace remora::server
