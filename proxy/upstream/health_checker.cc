#include "proxy/upstream/health_checker.h"

#include <optional>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/server/snapshot.h"

namespace remora::upstream {

using event::TcpConnection;

// One endpoint's checks: a timer, at most one check in flight, and the run of results.
class HealthChecker::Target final : public TcpConnection::Callbacks {
 public:
  Target(HealthChecker& owner, const server::ClusterRuntime& cluster,
         const server::EndpointRuntime& endpoint)
      : owner_(owner),
        cluster_name_(cluster.config->name),
        state_(endpoint.state),
        address_(endpoint.address),
        address_text_(endpoint.address_text) {
    Configure(cluster);
    timer_ = owner_.dispatcher_.CreateTimer([this] { Start(); });
    deadline_ = owner_.dispatcher_.CreateTimer([this] { Finish(false, "timed out"); });
    // The first check at once, spread a little so a big cluster's checks do not go together.
    timer_->Enable(absl::Milliseconds(absl::Uniform<int>(gen_, 0, 50)));
  }

  ~Target() override {
    if (conn_ != nullptr) conn_->SetCallbacks(nullptr);
    // No longer checked: back into rotation (the endpoint may stay, unchecked).
    state_->SetHealthy(true);
  }

  // The cluster's config (and stat slots) of the snapshot now serving.
  void Configure(const server::ClusterRuntime& cluster) {
    cfg_ = cluster.config->health_check;
    stats_ = cluster.stats;
    request_ = absl::StrCat("GET ", cfg_.path,
                            " HTTP/1.1\r\nHost: ", cfg_.host.empty() ? address_text_ : cfg_.host,
                            "\r\nUser-Agent: remora-health-check\r\nConnection: close\r\n\r\n");
  }

 private:
  void Start() {
    conn_.reset();  // the last check's connection, closed when it finished
    response_.clear();
    conn_ = TcpConnection::Connect(owner_.dispatcher_, reinterpret_cast<const sockaddr*>(&address_),
                                   cfg_.timeout);
    conn_->SetCallbacks(this);
    deadline_->Enable(cfg_.timeout);
  }

  void OnEvent(TcpConnection::Event event) override {
    switch (event) {
      case TcpConnection::Event::kConnected: {
        buffer::Buffer out;
        out.Append(request_);
        conn_->Write(out);
        conn_->ReadEnable(true);
        return;
      }
      case TcpConnection::Event::kConnectFailed:
        return Finish(false, "connect failed");
      case TcpConnection::Event::kConnectTimeout:
        return Finish(false, "connect timed out");
      case TcpConnection::Event::kConnectLocalError:
        // Out of descriptors here: not the endpoint's fault; try again next time.
        return Finish(std::nullopt, "");
      case TcpConnection::Event::kRemoteReset:
        return Finish(false, "connection reset");
    }
  }

  void OnRead(buffer::Buffer& data) override {
    response_ += data.ToString();
    data.Clear();
    size_t eol = response_.find("\r\n");
    if (eol == std::string::npos) {
      if (response_.size() > 1024) Finish(false, "no status line");
      return;
    }
    // "HTTP/1.x NNN reason"
    int status = 0;
    if (eol < 12 || !absl::StartsWith(response_, "HTTP/1.") ||
        !absl::SimpleAtoi(absl::string_view(response_).substr(9, 3), &status)) {
      return Finish(false, "malformed status line");
    }
    if (status >= 200 && status < 300) return Finish(true, "");
    Finish(false, absl::StrCat("status ", status));
  }

  void OnEndOfStream() override { Finish(false, "closed before a status line"); }

  // The check's outcome: passed, failed (why), or none at all.
  void Finish(std::optional<bool> passed, absl::string_view why) {
    deadline_->Disable();
    if (conn_ != nullptr && !conn_->closed()) conn_->Close(TcpConnection::CloseMode::kNow);
    // Freed at the next check's start: this may run inside the connection's own callback.
    if (passed.has_value()) Record(*passed, why);
    timer_->Enable(cfg_.interval);
  }

  void Record(bool passed, absl::string_view why) {
    owner_.stats_.Add(passed ? stats_.health_checks_passed : stats_.health_checks_failed);
    if (passed) {
      failures_ = 0;
      if (++successes_ >= cfg_.healthy_threshold && state_->SetHealthy(true)) {
        LOG_INFO("cluster %s: endpoint %s healthy again (%d checks passed in a row)", cluster_name_,
                 address_text_, successes_);
      }
      return;
    }
    successes_ = 0;
    if (++failures_ >= cfg_.unhealthy_threshold && state_->SetHealthy(false)) {
      LOG_WARN(
          "cluster %s: endpoint %s unhealthy, out of rotation (%d checks failed in a row; "
          "last: %s)",
          cluster_name_, address_text_, failures_, why);
    }
  }

  HealthChecker& owner_;
  const std::string cluster_name_;
  const std::shared_ptr<EndpointState> state_;
  const sockaddr_storage address_;
  const std::string address_text_;
  config::HealthCheck cfg_;
  stats::ClusterStats stats_;
  std::string request_;
  std::unique_ptr<event::Timer> timer_;     // the next check
  std::unique_ptr<event::Timer> deadline_;  // the current check's timeout
  std::unique_ptr<TcpConnection> conn_;
  std::string response_;
  uint32_t successes_ = 0;
  uint32_t failures_ = 0;
  absl::InsecureBitGen gen_;
};

HealthChecker::HealthChecker(event::UvDispatcher& dispatcher, stats::Writer& stats)
    : dispatcher_(dispatcher), stats_(stats) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::Update(const server::Snapshot& snapshot) {
  absl::flat_hash_map<std::string, std::unique_ptr<Target>> next;
  for (const server::ClusterRuntime& c : snapshot.clusters) {
    if (!c.config->health_check.enabled) continue;
    for (const server::EndpointRuntime& e : c.endpoints) {
      std::string key = absl::StrCat(c.config->name, "|", e.address_text);
      auto it = targets_.find(key);
      if (it != targets_.end()) {
        it->second->Configure(c);
        next[key] = std::move(it->second);
      } else {
        next[key] = std::make_unique<Target>(*this, c, e);
      }
    }
  }
  // Targets not carried over are destroyed here: their endpoints return to rotation. Their
  // connections are closed by TcpConnection's destructor (none is in a callback now: Update
  // runs from the config path, not from a check).
  targets_ = std::move(next);
}

}  // namespace remora::upstream
