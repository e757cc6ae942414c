#pragma once

// A Dispatcher with manual time, for unit tests of timer-driven logic. Nothing runs until the test
// calls RunPending() or AdvanceTime(); time moves only through AdvanceTime().

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proxy/event/dispatcher.h"

namespace remora::event {

class SimDispatcher final : public Dispatcher {
 public:
  SimDispatcher();
  ~SimDispatcher() override;

  void Post(absl::AnyInvocable<void()> cb) override;
  std::unique_ptr<Timer> CreateTimer(absl::AnyInvocable<void()> cb) override;
  void DeferredDelete(std::unique_ptr<DeferredDeletable> object) override;
  absl::Time Now() override { return now_; }
  bool IsCurrentThread() const override { return true; }

  // Runs posted callbacks and deferred deletions until none are left.
  void RunPending();
  // Moves time forward in order, firing each due timer at its own deadline, with RunPending() after
  // each one.
  void AdvanceTime(absl::Duration d);
  size_t ArmedTimers() const { return armed_.size(); }

 private:
  class SimTimer;
  friend class SimTimer;
  struct Key {
    absl::Time when;
    uint64_t seq;  // fire timers with the same deadline in arming order
    bool operator<(const Key& o) const { return when < o.when || (when == o.when && seq < o.seq); }
  };

  absl::Time now_;
  uint64_t next_seq_ = 0;
  std::map<Key, SimTimer*> armed_;
  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
};

}  // namespace remora::event
