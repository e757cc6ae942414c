#include "proxy/event/timeout_list.h"

#include <algorithm>

namespace remora::event {

void TimeoutList::Entry::Arm(TimeoutList& list) {
  Disarm();
  list.Append(*this);
}

void TimeoutList::Entry::Disarm() {
  if (list_ != nullptr) list_->Unlink(*this);
}

TimeoutList::TimeoutList(Dispatcher& dispatcher, absl::Duration timeout)
    : dispatcher_(dispatcher), timeout_(timeout) {}

TimeoutList::~TimeoutList() {
  while (head_ != nullptr) Unlink(*head_);
}

void TimeoutList::Append(Entry& e) {
  e.list_ = this;
  e.deadline_ = dispatcher_.Now() + timeout_;
  e.prev_ = tail_;
  e.next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = &e;
  } else {
    head_ = &e;
  }
  tail_ = &e;
  if (timer_ == nullptr) timer_ = dispatcher_.CreateTimer([this] { OnTimer(); });
  // Armed already means armed for an earlier (or the same) deadline.
  if (!timer_->Enabled()) timer_->Enable(timeout_);
}

void TimeoutList::Unlink(Entry& e) {
  if (e.prev_ != nullptr) {
    e.prev_->next_ = e.next_;
  } else {
    head_ = e.next_;
  }
  if (e.next_ != nullptr) {
    e.next_->prev_ = e.prev_;
  } else {
    tail_ = e.prev_;
  }
  e.prev_ = e.next_ = nullptr;
  e.list_ = nullptr;
}

void TimeoutList::OnTimer() {
  absl::Time now = dispatcher_.Now();
  // Entries armed by the callbacks expire a whole timeout from now: the loop ends.
  while (head_ != nullptr && head_->deadline_ <= now) {
    Entry* e = head_;
    Unlink(*e);
    e->OnTimeout();  // may destroy e, or other entries (which unlink themselves)
  }
  if (head_ != nullptr && !timer_->Enabled()) {
    timer_->Enable(std::max(head_->deadline_ - now, absl::ZeroDuration()));
  }
}

TimeoutList& TimeoutLists::For(absl::Duration timeout) {
  auto& list = lists_[absl::ToInt64Nanoseconds(timeout)];
  if (list == nullptr) list = std::make_unique<TimeoutList>(dispatcher_, timeout);
  return *list;
}

TimeoutList& TimeoutLists::ForPowerOfTwoMs(int k) {
  TimeoutList*& p = powers_[k];
  if (p == nullptr) p = &For(absl::Milliseconds(int64_t{1} << k));
  return *p;
}

void DeadlineTimer::ArmAt(absl::Time when) {
  when_ = when;
  ArmNextStep();
}

void DeadlineTimer::ArmNextStep() {
  // Whole milliseconds left, rounded up: never early.
  absl::Duration left = when_ - lists_.dispatcher().Now();
  int64_t ms = absl::ToInt64Milliseconds(left);
  if (left > absl::Milliseconds(ms)) ++ms;
  int k = 0;
  if (ms > 1)
    k = std::min(63 - __builtin_clzll(static_cast<uint64_t>(ms)), TimeoutLists::kPowers - 1);
  Arm(lists_.ForPowerOfTwoMs(k));
}

void DeadlineTimer::OnTimeout() {
  if (lists_.dispatcher().Now() < when_) {
    ArmNextStep();
    return;
  }
  cb_();  // may destroy this
}

}  // namespace remora::event
