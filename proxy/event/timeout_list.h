#pragma once

// Many timeouts of one duration for the price of one Timer. Per-request deadlines (a route's
// timeout) are armed and disarmed on nearly every exchange; as Timers each would be a heap insert
// and remove in the event loop. Entries of one duration armed on one dispatcher expire in the
// order they were armed (Now() never goes back), so a list keeps them in that order: arming
// appends, disarming unlinks (both O(1), no loop call), and a single Timer waits for the head.
// A disarmed head is not chased: the Timer fires at its old deadline, finds nothing due, and
// waits again for the new head.
//
// Lists and entries may die in either order: a list unlinks what is still armed on it.

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "proxy/event/dispatcher.h"

namespace remora::event {

class TimeoutList {
 public:
  // One pending timeout, embedded in its owner. Destroying it disarms it.
  class Entry {
   public:
    Entry() = default;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    virtual ~Entry() { Disarm(); }

    // OnTimeout() runs list.timeout() from now unless Disarm() comes first. Re-arming restarts.
    void Arm(TimeoutList& list);
    void Disarm();
    bool armed() const { return list_ != nullptr; }

   protected:
    // Runs disarmed; may arm again or destroy the entry.
    virtual void OnTimeout() = 0;

   private:
    friend class TimeoutList;
    TimeoutList* list_ = nullptr;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    absl::Time deadline_;
  };

  TimeoutList(Dispatcher& dispatcher, absl::Duration timeout);
  ~TimeoutList();
  TimeoutList(const TimeoutList&) = delete;
  TimeoutList& operator=(const TimeoutList&) = delete;

  absl::Duration timeout() const { return timeout_; }

 private:
  void Append(Entry& e);
  void Unlink(Entry& e);
  void OnTimer();

  Dispatcher& dispatcher_;
  absl::Duration timeout_;
  std::unique_ptr<Timer> timer_;  // made on first use
  Entry* head_ = nullptr;
  Entry* tail_ = nullptr;
};

// A dispatcher's lists, one per duration asked for (a config has few distinct timeouts). Owned by
// the worker; lists live as long as it does.
class TimeoutLists {
 public:
  explicit TimeoutLists(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  TimeoutList& For(absl::Duration timeout);
  // The list of 2^k milliseconds (k < kPowers), looked up without hashing.
  static constexpr int kPowers = 32;
  TimeoutList& ForPowerOfTwoMs(int k);
  Dispatcher& dispatcher() { return dispatcher_; }

 private:
  Dispatcher& dispatcher_;
  absl::flat_hash_map<int64_t, std::unique_ptr<TimeoutList>> lists_;  // by nanoseconds
  TimeoutList* powers_[kPowers] = {};
};

// A timeout at a point in time, each one different (a caller's deadline), for the price of a
// TimeoutList entry: it waits on the list of the largest power-of-two milliseconds not past the
// time left, and when that fires, on the next one for the rest. Arming is an O(1) append however
// far the time is; one that is reached re-arms at most ~log2(milliseconds) times on the way.
// Fires within about a millisecond after `when` (the lists' timers have millisecond resolution).
class DeadlineTimer final : private TimeoutList::Entry {
 public:
  DeadlineTimer(TimeoutLists& lists, absl::AnyInvocable<void()> cb)
      : lists_(lists), cb_(std::move(cb)) {}

  // Runs the callback at `when` (at once, on the next turn, if it has passed) unless Disarm()
  // comes first. Re-arming replaces the time.
  void ArmAt(absl::Time when);
  using TimeoutList::Entry::armed;
  using TimeoutList::Entry::Disarm;

 private:
  void OnTimeout() override;
  void ArmNextStep();

  TimeoutLists& lists_;
  absl::AnyInvocable<void()> cb_;
  absl::Time when_;
};

}  // namespace remora::event
