#pragma once

// Watches the directories holding the config's TLS files (main loop) and says when something in
// them changed, debounced. Directories, not files: Kubernetes updates a mounted secret by
// swapping a `..data` symlink in its directory, which a watch on the file (the old inode) never
// sees; cert-manager and CSI drivers write files aside and rename them into place.

#include <uv.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "proxy/event/uv_dispatcher.h"

namespace remora::server {

class CertWatcher {
 public:
  // `on_change` runs on the main loop `debounce` after the last of a burst of changes.
  CertWatcher(event::UvDispatcher& loop, absl::Duration debounce,
              absl::AnyInvocable<void()> on_change);
  ~CertWatcher();

  // Watches exactly these directories (from now on; others are dropped).
  void Watch(const std::set<std::string>& directories);

 private:
  struct Handle;
  static void OnEvent(uv_fs_event_t* h, const char* file, int events, int status);
  void Changed();

  event::UvDispatcher& loop_;
  absl::Duration debounce_;
  absl::AnyInvocable<void()> on_change_;
  std::unique_ptr<event::Timer> timer_;
  std::vector<Handle*> handles_;  // freed in their close callbacks
};

}  // namespace remora::server
