#pragma once

// The production Dispatcher: one libuv loop, run by one thread. Also the only owner of uv_loop_t
// outside proxy/event/: sockets and listeners (tcp.h) are created through it.

#include <uv.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proxy/event/dispatcher.h"

namespace remora::event {

class UvDispatcher final : public Dispatcher {
 public:
  UvDispatcher();
  // Closes every handle still open on the loop and runs it until they are freed. Must be called on
  // the loop's thread (or after it has joined).
  ~UvDispatcher() override;

  // Runs the loop on the calling thread until Exit(). The calling thread becomes the owner.
  void Run();
  // Thread-safe: makes Run() return after the current turn.
  void Exit();
  // Owner thread, after Run() returned: closes every handle still open and runs the loop until
  // all close callbacks and deferred deletions are done, so nothing of this loop runs later on
  // another thread (where, say, this thread's slab pool no longer exists). Posts made afterwards
  // are dropped. The destructor does this if it was not done.
  void Quiesce();

  void Post(absl::AnyInvocable<void()> cb) override;
  std::unique_ptr<Timer> CreateTimer(absl::AnyInvocable<void()> cb) override;
  void DeferredDelete(std::unique_ptr<DeferredDeletable> object) override;
  absl::Time Now() override;
  bool IsCurrentThread() const override;

  uv_loop_t* loop() { return &loop_; }

  // Timer handles are kept for reuse when their Timer goes (a stream's timers come and go with
  // every request): no allocation, init or close per timer once warm. For UvTimer only.
  uv_timer_t* AcquireTimerHandle();
  void ReleaseTimerHandle(uv_timer_t* handle);
  static constexpr size_t kMaxSpareTimers = 4096;

 private:
  static void OnAsync(uv_async_t* handle);
  static void OnIdle(uv_idle_t* handle);
  void RunPosted();
  void RunDeferredDeletes();

  uv_loop_t loop_;
  uv_async_t async_;
  uv_idle_t idle_;  // active only while deletions are pending, so poll does not block on them
  std::atomic<std::thread::id> owner_;
  std::atomic<bool> exiting_{false};

  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
  bool quiesced_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void()>> running_;  // swapped out of posted_; owner thread only

  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  // The batch being freed. Two vectors swapped back and forth keep their capacity: a turn's
  // deferred deletes (several per request) cost no allocation.
  std::vector<std::unique_ptr<DeferredDeletable>> deleting_;
  bool idle_active_ = false;
  std::vector<uv_timer_t*> spare_timers_;  // stopped, initialised, unowned
  bool timers_pooled_ = true;              // false once quiescing: handles are closed instead
};

}  // namespace remora::event
