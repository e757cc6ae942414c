#include "proxy/event/sim_dispatcher.h"

namespace remora::event {

class SimDispatcher::SimTimer final : public Timer {
 public:
  SimTimer(SimDispatcher* d, absl::AnyInvocable<void()> cb) : d_(d), cb_(std::move(cb)) {}
  ~SimTimer() override { Disable(); }
  void Enable(absl::Duration after) override {
    Disable();
    key_ = Key{d_->now_ + std::max(after, absl::ZeroDuration()), d_->next_seq_++};
    d_->armed_[key_] = this;
    armed_ = true;
  }
  void Disable() override {
    if (armed_) d_->armed_.erase(key_);
    armed_ = false;
  }
  bool Enabled() const override { return armed_; }
  void Fire() {
    armed_ = false;
    cb_();
  }

 private:
  SimDispatcher* d_;
  absl::AnyInvocable<void()> cb_;
  Key key_{};
  bool armed_ = false;
};

SimDispatcher::SimDispatcher() : now_(absl::UnixEpoch() + absl::Hours(1)) {}

SimDispatcher::~SimDispatcher() { to_delete_.clear(); }

void SimDispatcher::Post(absl::AnyInvocable<void()> cb) {
  absl::MutexLock lock(&mu_);
  posted_.push_back(std::move(cb));
}

std::unique_ptr<Timer> SimDispatcher::CreateTimer(absl::AnyInvocable<void()> cb) {
  return std::make_unique<SimTimer>(this, std::move(cb));
}

void SimDispatcher::DeferredDelete(std::unique_ptr<DeferredDeletable> object) {
  to_delete_.push_back(std::move(object));
}

void SimDispatcher::RunPending() {
  for (;;) {
    std::vector<absl::AnyInvocable<void()>> batch;
    {
      absl::MutexLock lock(&mu_);
      batch.swap(posted_);
    }
    if (batch.empty() && to_delete_.empty()) return;
    for (auto& cb : batch) cb();
    std::vector<std::unique_ptr<DeferredDeletable>> deletes;
    deletes.swap(to_delete_);
  }
}

void SimDispatcher::AdvanceTime(absl::Duration d) {
  const absl::Time end = now_ + d;
  RunPending();
  while (!armed_.empty() && armed_.begin()->first.when <= end) {
    auto it = armed_.begin();
    now_ = it->first.when;
    SimTimer* t = it->second;
    armed_.erase(it);
    t->Fire();
    RunPending();
  }
  now_ = end;
}

}  // namespace remora::event
