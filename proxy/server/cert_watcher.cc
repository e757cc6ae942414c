#include "proxy/server/cert_watcher.h"

#include "proxy/common/log.h"

namespace remora::server {

struct CertWatcher::Handle {
  uv_fs_event_t event;
  CertWatcher* owner;
  std::string directory;
};

CertWatcher::CertWatcher(event::UvDispatcher& loop, absl::Duration debounce,
                         absl::AnyInvocable<void()> on_change)
    : loop_(loop), debounce_(debounce), on_change_(std::move(on_change)) {
  timer_ = loop_.CreateTimer([this] { on_change_(); });
}

CertWatcher::~CertWatcher() { Watch({}); }

void CertWatcher::Watch(const std::set<std::string>& directories) {
  for (Handle* h : handles_) {
    h->owner = nullptr;
    uv_fs_event_stop(&h->event);
    uv_close(reinterpret_cast<uv_handle_t*>(&h->event),
             [](uv_handle_t* u) { delete static_cast<Handle*>(u->data); });
  }
  handles_.clear();
  for (const std::string& dir : directories) {
    auto* h = new Handle{{}, this, dir};
    uv_fs_event_init(loop_.loop(), &h->event);
    h->event.data = h;
    int rc = uv_fs_event_start(&h->event, &CertWatcher::OnEvent, dir.c_str(), 0);
    if (rc != 0) {
      LOG_WARN("cannot watch %s for certificate changes: %s; a change there needs SIGHUP", dir,
               uv_strerror(rc));
    }
    handles_.push_back(h);
  }
}

void CertWatcher::OnEvent(uv_fs_event_t* u, const char*, int, int status) {
  auto* h = static_cast<Handle*>(u->data);
  if (h->owner == nullptr || status != 0) return;
  h->owner->Changed();
}

void CertWatcher::Changed() {
  // A rotation is several writes and renames: act once, after the last.
  timer_->Enable(debounce_);
}

}  // namespace remora::server
