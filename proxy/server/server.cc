#include "proxy/server/server.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxy/common/log.h"
#include "proxy/config/decode.h"
#include "proxy/network/address.h"
#include "proxy/server/process.h"

namespace remora::server {
namespace {

constexpr int kBacklog = 1024;

log::Level ToLogLevel(config::LogLevel l) { return static_cast<log::Level>(static_cast<int>(l)); }

void CloseAll(std::vector<std::vector<ListenerSocket>>& per_worker) {
  for (auto& v : per_worker) {
    for (auto& s : v) ::close(s.fd);
    v.clear();
  }
}

}  // namespace

Server::Server(std::string config_path, config::Config config)
    : config_path_(std::move(config_path)), initial_config_(std::move(config)) {}

Server::~Server() = default;

int Server::Run() {
  long nofile = PrepareProcess();
  log::SetLevel(ToLogLevel(initial_config_.log_level));
  worker_count_ = initial_config_.workers > 0 ? static_cast<int>(initial_config_.workers)
                                              : DefaultWorkerCount();
  store_ = std::make_unique<stats::Store>(worker_count_);
  health_ = std::make_unique<upstream::HealthChecker>(main_, store_->main_writer());
  server_stats_ = stats::RegisterServerStats(*store_);
  stats::Writer& w = store_->main_writer();
  w.Set(server_stats_.workers, static_cast<uint64_t>(worker_count_));
  w.Set(server_stats_.build_info, 1);
  w.Set(server_stats_.start_time, static_cast<uint64_t>(absl::ToUnixSeconds(absl::Now())));

  for (int i = 0; i < worker_count_; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *store_));
  }
  if (absl::Status s = ApplyConfig(initial_config_); !s.ok()) {
    LOG_ERROR("cannot start: %s", s.message());
    workers_.clear();
    return 1;
  }
  if (absl::Status s = StartAdmin(); !s.ok()) {
    LOG_ERROR("cannot start the admin API: %s", s.message());
    workers_.clear();
    return 1;
  }
  for (auto& worker : workers_) worker->Start();

  signals_.push_back(
      std::make_unique<event::SignalHandler>(main_, SIGTERM, [this] { StartDrain("SIGTERM"); }));
  signals_.push_back(
      std::make_unique<event::SignalHandler>(main_, SIGINT, [this] { StartDrain("SIGINT"); }));
  signals_.push_back(std::make_unique<event::SignalHandler>(main_, SIGHUP, [this] { Reload(); }));

  LOG_INFO("remora %s started: %d workers, open files limit %d, config version %d", REMORA_VERSION,
           worker_count_, nofile, version_);
  if (on_started_) {
    std::map<std::string, std::string> listeners;
    for (const auto& [name, b] : bound_) {
      config::SocketAddress a = b.declared;
      a.port = b.port;
      listeners[name] = a.ToString();
    }
    on_started_(admin_bound_, listeners);
  }
  main_.Run();
  return exit_code_;
}

absl::Status Server::ApplyConfig(config::Config cfg, std::optional<TlsContexts> loaded) {
  // 0. TLS certificates and keys: a file that cannot be loaded rejects the config whole.
  absl::StatusOr<TlsContexts> tls = loaded.has_value() ? std::move(*loaded) : LoadTlsContexts(cfg);
  if (!tls.ok()) return tls.status();
  // 1. Work out which listening sockets to open and close. A listener keeps its sockets across a
  //    change as long as its address and kind are unchanged.
  std::vector<std::vector<ListenerSocket>> added(workers_.size());
  std::vector<std::string> removed;
  std::map<std::string, BoundListener> next_bound;
  for (const auto& [name, b] : bound_) {
    bool kept = false;
    for (const config::Listener& l : cfg.listeners) {
      if (l.name == name && l.address == b.declared && l.kind == b.kind) kept = true;
    }
    if (!kept) removed.push_back(name);
  }
  for (const config::Listener& l : cfg.listeners) {
    auto it = bound_.find(l.name);
    if (it != bound_.end() && it->second.declared == l.address && it->second.kind == l.kind) {
      next_bound[l.name] = it->second;
      continue;
    }
    // 2. Bind one SO_REUSEPORT socket per worker. With port 0, worker 0's socket picks the port and
    //    the others bind to the same one.
    config::SocketAddress addr = l.address;
    bool ours = false;  // held by one of our listeners now (renamed, or re-kinded)
    for (const auto& [other, held] : bound_) ours = ours || held.declared == l.address;
    if (addr.port != 0 && !ours) {
      if (absl::Status free = network::CheckAddressFree(addr); !free.ok()) {
        CloseAll(added);
        return absl::Status(free.code(), absl::StrCat("listener ", l.name, ": ", free.message()));
      }
    }
    for (size_t i = 0; i < workers_.size(); ++i) {
      absl::StatusOr<int> fd = network::CreateListenSocket(addr, /*reuse_port=*/true, kBacklog);
      if (!fd.ok()) {
        CloseAll(added);
        return absl::Status(fd.status().code(),
                            absl::StrCat("listener ", l.name, ": ", fd.status().message()));
      }
      if (i == 0 && addr.port == 0) addr.port = network::BoundPort(*fd).value_or(0);
      added[i].push_back(ListenerSocket{l.name, *fd});
    }
    next_bound[l.name] = BoundListener{l.address, l.kind, addr.port};
  }

  // 3. Everything that can fail has succeeded: swap.
  log::SetLevel(ToLogLevel(cfg.log_level));
  ++version_;
  snapshot_ = BuildSnapshot(std::move(cfg), version_, worker_count_, *store_, endpoints_, &*tls);
  tls_files_ = std::move(tls->files);
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->ApplySnapshot(snapshot_, std::move(added[i]), removed);
  }
  for (const auto& [name, b] : next_bound) {
    if (bound_.count(name) == 0 || bound_[name].port != b.port) {
      config::SocketAddress a = b.declared;
      a.port = b.port;
      LOG_INFO("listener %s (%s) listening on %s", name, config::ListenerKindName(b.kind),
               a.ToString());
    }
  }
  for (const std::string& name : removed) {
    if (next_bound.count(name) == 0) LOG_INFO("listener %s closed", name);
  }
  bound_ = std::move(next_bound);
  store_->main_writer().Set(server_stats_.config_version, version_);
  if (health_ != nullptr) health_->Update(*snapshot_);
  endpoints_.Prune();
  WatchCertificates();
  return absl::OkStatus();
}

void Server::WatchCertificates() {
  std::set<std::string> dirs;
  auto add = [&](const std::string& file) {
    if (file.empty()) return;
    std::string dir = std::filesystem::path(file).parent_path().string();
    dirs.insert(dir.empty() ? "." : dir);
  };
  for (const config::Listener& l : snapshot_->config.listeners) {
    if (l.tls.enabled) {
      add(l.tls.cert);
      add(l.tls.key);
      add(l.tls.ca);
    }
  }
  for (const config::Cluster& c : snapshot_->config.clusters) {
    if (c.tls.enabled) {
      add(c.tls.cert);
      add(c.tls.key);
      add(c.tls.ca);
    }
  }
  if (cert_watcher_ == nullptr) {
    if (dirs.empty()) return;
    cert_watcher_ = std::make_unique<CertWatcher>(main_, kCertificateDebounce,
                                                  [this] { ReloadCertificates(); });
    cert_retry_timer_ = main_.CreateTimer([this] { ReloadCertificates(); });
  }
  cert_watcher_->Watch(dirs);
}

void Server::ReloadCertificates() {
  if (draining_) return;
  stats::Writer& w = store_->main_writer();
  // The running config again: only the files it names are read anew. Connections keep the
  // contexts they started with; new handshakes get the new ones.
  absl::StatusOr<TlsContexts> tls = LoadTlsContexts(snapshot_->config);
  if (tls.ok() && tls->files == tls_files_) {
    cert_retry_delay_ = absl::ZeroDuration();
    cert_retry_timer_->Disable();
    LOG_DEBUG("a watched directory changed; the TLS files in use did not");
    return;
  }
  absl::Status s = tls.ok() ? ApplyConfig(snapshot_->config, *std::move(tls)) : tls.status();
  if (s.ok()) {
    cert_retry_delay_ = absl::ZeroDuration();
    cert_retry_timer_->Disable();
    w.Add(server_stats_.tls_reloads_ok);
    LOG_INFO("TLS files changed on disk: reloaded (config version %d)", version_);
    return;
  }
  w.Add(server_stats_.tls_reloads_failed);
  // A pair being written (key first or certificate first) is tried again shortly, then less
  // often; the next change on disk tries at once.
  cert_retry_delay_ = std::min(kMaxCertificateRetry, cert_retry_delay_ == absl::ZeroDuration()
                                                         ? absl::Milliseconds(500)
                                                         : 2 * cert_retry_delay_);
  LOG_WARN(
      "TLS files changed on disk but cannot be used: %s; the previous ones keep serving; "
      "trying again in %s",
      s.message(), absl::FormatDuration(cert_retry_delay_));
  cert_retry_timer_->Enable(cert_retry_delay_);
}

void Server::Reload() {
  if (draining_) return;
  config::Config cfg;
  std::vector<config::ConfigError> errors;
  stats::Writer& w = store_->main_writer();
  bool ok = config_path_.empty() ? (cfg = initial_config_, true)
                                 : config::LoadConfigFile(config_path_, &cfg, &errors);
  if (!ok) {
    for (const auto& e : errors) LOG_ERROR("reload rejected: %s", e.Format(config_path_));
    LOG_ERROR("reload rejected: %d errors; still serving config version %d", errors.size(),
              version_);
    w.Add(server_stats_.reloads_failed);
    return;
  }
  // Process-level settings take effect only at start; keep the running values so /config tells
  // the truth.
  const config::Config& running = snapshot_->config;
  if (cfg.workers != running.workers) {
    LOG_WARN("reload: workers changed from %d to %d; takes effect on restart", running.workers,
             cfg.workers);
    cfg.workers = running.workers;
  }
  if (!(cfg.admin.address == running.admin.address) ||
      cfg.admin.unix_socket != running.admin.unix_socket ||
      cfg.admin.token != running.admin.token) {
    LOG_WARN("reload: admin settings changed; they take effect on restart");
    cfg.admin = running.admin;
  }
  if (absl::Status s = ApplyConfig(std::move(cfg)); !s.ok()) {
    LOG_ERROR("reload rejected: %s; still serving config version %d", s.message(), version_);
    w.Add(server_stats_.reloads_failed);
    return;
  }
  w.Add(server_stats_.reloads_ok);
  LOG_INFO("reload applied: config version %d", version_);
}

void Server::StartDrain(const char* why) {
  if (draining_) {
    if (std::string(why) == "SIGINT") {
      LOG_WARN("second SIGINT: closing all connections now");
      for (auto& worker : workers_) worker->CloseAll();
      forced_close_ = true;
    }
    return;
  }
  draining_ = true;
  store_->main_writer().Set(server_stats_.draining, 1);
  drain_deadline_ = main_.Now() + snapshot_->config.drain_timeout;
  size_t open = 0;
  for (auto& worker : workers_) {
    worker->StartDrain();
    open += worker->active_connections();
  }
  LOG_INFO("drain started (%s): workers closing their listeners, %d connections open, deadline %s",
           why, open, absl::FormatDuration(snapshot_->config.drain_timeout));
  drain_timer_ = main_.CreateTimer([this] { PollDrain(); });
  drain_timer_->Enable(absl::Milliseconds(20));
}

void Server::PollDrain() {
  size_t open = 0;
  bool all_closed = true;
  for (auto& worker : workers_) {
    // Read the flag first: once it is set, the count can only fall.
    all_closed = all_closed && worker->listeners_closed();
    open += worker->active_connections();
  }
  if (open == 0 && all_closed) {
    LOG_INFO("drain complete");
    Shutdown();
    return;
  }
  if (!forced_close_ && main_.Now() >= drain_deadline_) {
    LOG_WARN("drain deadline passed: closing %d connections", open);
    for (auto& worker : workers_) worker->CloseAll();
    forced_close_ = true;
  }
  drain_timer_->Enable(absl::Milliseconds(20));
}

void Server::Shutdown() {
  for (auto& worker : workers_) worker->Stop();
  workers_.clear();
  health_.reset();  // its endpoints no longer matter; its timers would keep the loop busy
  if (admin_ != nullptr) admin_->Close();
  signals_.clear();
  if (!snapshot_->config.admin.unix_socket.empty()) {
    ::unlink(snapshot_->config.admin.unix_socket.c_str());
  }
  main_.Exit();
}

absl::Status Server::StartAdmin() {
  const config::Admin& a = snapshot_->config.admin;
  admin_ = std::make_unique<admin::AdminServer>(main_, a.token);
  RegisterAdminRoutes();
  absl::StatusOr<int> fd = network::CreateListenSocket(a.address, /*reuse_port=*/false, 128);
  if (!fd.ok()) return fd.status();
  config::SocketAddress bound = a.address;
  bound.port = network::BoundPort(*fd).value_or(0);
  admin_bound_ = bound.ToString();
  admin_->Serve(*fd);
  LOG_INFO("admin listening on %s", admin_bound_);
  if (!a.unix_socket.empty()) {
    absl::StatusOr<int> ufd = network::CreateUnixListenSocket(a.unix_socket, 128);
    if (!ufd.ok()) return ufd.status();
    admin_->Serve(*ufd);
    LOG_INFO("admin listening on unix:%s", a.unix_socket);
  }
  return absl::OkStatus();
}

}  // namespace remora::server
