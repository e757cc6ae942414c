#pragma once

// The main thread: loads and applies config, owns the workers, the admin API, signals, reload and
// drain. Every config change goes through ApplyConfig, which binds new listening sockets first and
// swaps the snapshot only if everything succeeded: a change applies whole or not at all.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "proxy/admin/admin_server.h"
#include "proxy/config/config.h"
#include "proxy/event/signal.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/server/cert_watcher.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker.h"
#include "proxy/stats/metrics.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/endpoint_state.h"
#include "proxy/upstream/health_checker.h"

namespace remora::server {

class Server {
 public:
  // `config_path` is re-read on SIGHUP; empty for an embedded config (SIGHUP then re-applies it).
  Server(std::string config_path, config::Config config);
  ~Server();

  // Called once everything listens, with the admin address and each listener's bound address
  // (these differ from the config for port 0).
  using StartedCallback =
      absl::AnyInvocable<void(const std::string& admin, const std::map<std::string, std::string>&)>;
  void SetOnStarted(StartedCallback cb) { on_started_ = std::move(cb); }

  // Starts everything and runs the main loop until drain completes. Returns the process exit code.
  int Run();

 private:
  struct BoundListener {
    config::SocketAddress declared;
    config::ListenerKind kind;
    uint16_t port;  // as bound (differs from declared for port 0)
  };

  // `tls`: the config's contexts if already loaded (else loaded here).
  absl::Status ApplyConfig(config::Config config, std::optional<TlsContexts> tls = std::nullopt);
  void Reload();
  // A TLS file of the running config changed on disk: the same config again, with the new files.
  void ReloadCertificates();
  // Watches the directories of the running config's TLS files.
  void WatchCertificates();

  static constexpr absl::Duration kCertificateDebounce = absl::Milliseconds(200);
  static constexpr absl::Duration kMaxCertificateRetry = absl::Seconds(30);
  void StartDrain(const char* why);
  void PollDrain();
  void Shutdown();
  absl::Status StartAdmin();
  void RegisterAdminRoutes();
  // `now` on the loops' clock (Dispatcher::Now), which breaker times use.
  std::string ClustersJson(absl::Time now) const;
  std::string ListenersJson() const;

  std::string config_path_;
  config::Config initial_config_;
  event::UvDispatcher main_;
  int worker_count_ = 0;
  std::unique_ptr<stats::Store> store_;
  stats::ServerStats server_stats_{};
  upstream::EndpointStateRegistry endpoints_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::unique_ptr<upstream::HealthChecker> health_;  // active health checks, on this loop
  uint64_t version_ = 0;
  std::map<std::string, BoundListener> bound_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::string admin_bound_;
  std::vector<std::unique_ptr<event::SignalHandler>> signals_;
  std::unique_ptr<event::Timer> drain_timer_;
  std::unique_ptr<CertWatcher> cert_watcher_;
  std::unique_ptr<event::Timer> cert_retry_timer_;  // a half-written pair is tried again
  absl::Duration cert_retry_delay_;
  // The TLS files the running snapshot was made from: a change on disk that leaves them as they
  // were (another file in a watched directory, a rewrite with the same bytes) applies nothing.
  absl::flat_hash_map<std::string, std::string> tls_files_;
  absl::Time drain_deadline_;
  bool draining_ = false;
  bool forced_close_ = false;
  int exit_code_ = 0;
  StartedCallback on_started_;
};

}  // namespace remora::server
