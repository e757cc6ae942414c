#include "proxy/event/uv_dispatcher.h"

#include <cstdlib>

#include "proxy/common/log.h"

namespace remora::event {
namespace {

class UvTimer final : public Timer {
 public:
  UvTimer(UvDispatcher& dispatcher, absl::AnyInvocable<void()> cb)
      : dispatcher_(dispatcher), handle_(dispatcher.AcquireTimerHandle()), cb_(std::move(cb)) {
    handle_->data = this;
  }
  ~UvTimer() override {
    handle_->data = nullptr;
    dispatcher_.ReleaseTimerHandle(handle_);
  }
  void Enable(absl::Duration after) override {
    int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(after, absl::Milliseconds(1)));
    uv_timer_start(handle_, &UvTimer::OnFire, ms < 0 ? 0 : static_cast<uint64_t>(ms), 0);
  }
  void Disable() override { uv_timer_stop(handle_); }
  bool Enabled() const override {
    return uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_)) != 0;
  }

 private:
  static void OnFire(uv_timer_t* handle) {
    auto* self = static_cast<UvTimer*>(handle->data);
    if (self != nullptr) self->cb_();  // may destroy self: touch nothing after
  }
  UvDispatcher& dispatcher_;
  uv_timer_t* handle_;
  absl::AnyInvocable<void()> cb_;
};

void CloseAndFreeTimer(uv_timer_t* h) {
  // The handle's memory may only be freed in its close callback (libuv handle.rst).
  uv_close(reinterpret_cast<uv_handle_t*>(h),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
}

}  // namespace

UvDispatcher::UvDispatcher() {
  if (uv_loop_init(&loop_) != 0) {
    LOG_ERROR("uv_loop_init failed");
    std::abort();
  }
  uv_async_init(&loop_, &async_, &UvDispatcher::OnAsync);
  async_.data = this;
  uv_idle_init(&loop_, &idle_);
  idle_.data = this;
  owner_.store(std::this_thread::get_id());
}

UvDispatcher::~UvDispatcher() {
  Quiesce();
  uv_loop_close(&loop_);
}

void UvDispatcher::Quiesce() {
  {
    absl::MutexLock lock(&mu_);
    if (quiesced_) return;
    quiesced_ = true;
  }
  RunPosted();
  RunDeferredDeletes();
  timers_pooled_ = false;
  for (uv_timer_t* h : spare_timers_) CloseAndFreeTimer(h);
  spare_timers_.clear();
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  // Handles closed above with a nullptr callback are embedded (async_, idle_) or owned by objects
  // that registered their own close callbacks before; run until every close callback has fired.
  while (uv_run(&loop_, UV_RUN_NOWAIT) != 0) {
  }
  RunDeferredDeletes();
}

void UvDispatcher::Run() {
  owner_.store(std::this_thread::get_id());
  while (!exiting_.load(std::memory_order_acquire)) {
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  RunPosted();
  RunDeferredDeletes();
}

void UvDispatcher::Exit() {
  Post([this] {
    exiting_.store(true, std::memory_order_release);
    uv_stop(&loop_);
  });
}

void UvDispatcher::Post(absl::AnyInvocable<void()> cb) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    if (quiesced_) return;  // the loop is gone; nothing would run it
    wake = posted_.empty();
    posted_.push_back(std::move(cb));
  }
  // uv_async_send coalesces; one wake-up per empty->non-empty transition is enough because the
  // handler drains the whole queue.
  if (wake) uv_async_send(&async_);
}

void UvDispatcher::OnAsync(uv_async_t* handle) {
  static_cast<UvDispatcher*>(handle->data)->RunPosted();
}

void UvDispatcher::RunPosted() {
  {
    absl::MutexLock lock(&mu_);
    running_.swap(posted_);
  }
  for (auto& cb : running_) cb();
  running_.clear();
}

std::unique_ptr<Timer> UvDispatcher::CreateTimer(absl::AnyInvocable<void()> cb) {
  return std::make_unique<UvTimer>(*this, std::move(cb));
}

uv_timer_t* UvDispatcher::AcquireTimerHandle() {
  if (!spare_timers_.empty()) {
    uv_timer_t* h = spare_timers_.back();
    spare_timers_.pop_back();
    return h;
  }
  auto* h = new uv_timer_t;
  uv_timer_init(&loop_, h);
  return h;
}

void UvDispatcher::ReleaseTimerHandle(uv_timer_t* h) {
  uv_timer_stop(h);
  if (timers_pooled_ && spare_timers_.size() < kMaxSpareTimers) {
    spare_timers_.push_back(h);
  } else {
    CloseAndFreeTimer(h);
  }
}

void UvDispatcher::DeferredDelete(std::unique_ptr<DeferredDeletable> object) {
  to_delete_.push_back(std::move(object));
  if (!idle_active_) {
    idle_active_ = true;
    uv_idle_start(&idle_, &UvDispatcher::OnIdle);
  }
}

void UvDispatcher::OnIdle(uv_idle_t* handle) {
  auto* self = static_cast<UvDispatcher*>(handle->data);
  self->RunDeferredDeletes();
  uv_idle_stop(handle);
  self->idle_active_ = false;
}

void UvDispatcher::RunDeferredDeletes() {
  // Destructors may defer more deletions; keep going until none are left.
  if (!deleting_.empty()) return;  // a destructor got here: the running pass frees it all
  while (!to_delete_.empty()) {
    deleting_.swap(to_delete_);
    deleting_.clear();
  }
}

absl::Time UvDispatcher::Now() {
  // FromUnixMillis is inline; Time + Duration is not (absl's operator+= is out of line).
  return absl::FromUnixMillis(static_cast<int64_t>(uv_now(&loop_)));
}

bool UvDispatcher::IsCurrentThread() const { return owner_.load() == std::this_thread::get_id(); }

}  // namespace remora::event
