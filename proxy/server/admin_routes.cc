// The admin API's endpoints (DESIGN.md section 7). The HTTP plumbing and auth are in
// proxy/admin/admin_server.h; this file is what each endpoint answers.

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/config/render.h"
#include "proxy/server/process.h"
#include "proxy/server/server.h"

namespace remora::server {

using admin::Request;
using admin::Response;

void Server::RegisterAdminRoutes() {
  admin_->AddRoute("GET", "/live", false,
                   [](const Request&) { return Response::Text(200, "live\n"); });
  admin_->AddRoute("GET", "/ready", false, [this](const Request&) {
    return draining_ ? Response::Text(503, "draining\n") : Response::Text(200, "ready\n");
  });
  admin_->AddRoute("GET", "/metrics", false, [this](const Request&) {
    stats::Writer& w = store_->main_writer();
    w.Set(server_stats_.open_fds, static_cast<uint64_t>(OpenFdCount()));
    w.Set(server_stats_.resident_bytes, static_cast<uint64_t>(ResidentBytes()));
    for (const ClusterRuntime& c : snapshot_->clusters) {
      w.Set(c.stats.retries_active, static_cast<uint64_t>(c.state->retry_budget.in_flight()));
      w.Set(c.stats.requests_active, static_cast<uint64_t>(c.ActiveRequests()));
      w.Set(c.stats.endpoints_ejected, static_cast<uint64_t>(c.state->breakers_open.load()));
      w.Set(c.stats.endpoints_unhealthy,
            static_cast<uint64_t>(c.state->unhealthy_endpoints.load()));
    }
    Response r = Response::Text(200, store_->RenderPrometheus());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  });
  admin_->AddRoute("GET", "/config", false, [this](const Request&) {
    nlohmann::json j;
    j["version"] = snapshot_->version;
    j["config"] = config::ConfigToJson(snapshot_->config, /*redact_secrets=*/true);
    return Response::Json(200, j.dump(2) + "\n");
  });
  admin_->AddRoute("GET", "/clusters", false, [this](const Request&) {
    return Response::Json(200, ClustersJson(main_.Now()));
  });
  admin_->AddRoute("GET", "/listeners", false,
                   [this](const Request&) { return Response::Json(200, ListenersJson()); });
  admin_->AddRoute("POST", "/drain", true, [this](const Request&) {
    if (draining_) return Response::Text(202, "already draining\n");
    // Answer first; the drain starts on the next loop turn.
    main_.Post([this] { StartDrain("POST /drain"); });
    return Response::Text(202, "draining\n");
  });
  admin_->AddRoute("GET", "/logging", false, [](const Request&) {
    return Response::Text(200, absl::StrCat("level: ", log::LevelName(log::GetLevel()), "\n"));
  });
  admin_->AddRoute("POST", "/logging", true, [](const Request& req) {
    log::Level level;
    std::string name = req.QueryParam("level");
    if (!log::ParseLevel(name, &level)) {
      return Response::Text(400, absl::StrCat("bad level \"", name,
                                              "\": use trace, debug, info, warn, error or off\n"));
    }
    log::SetLevel(level);
    LOG_WARN("log level set to %s through the admin API", name);
    return Response::Text(200, absl::StrCat("level: ", name, "\n"));
  });
}

std::string Server::ClustersJson(absl::Time now) const {
  nlohmann::json clusters = nlohmann::json::array();
  for (const ClusterRuntime& c : snapshot_->clusters) {
    nlohmann::json endpoints = nlohmann::json::array();
    for (const EndpointRuntime& e : c.endpoints) {
      endpoints.push_back({
          {"address", e.address_text},
          {"weight", e.weight},
          {"active_connections", e.state->active_connections.load()},
          {"total_connections", e.state->total_connections.load()},
          {"connect_failures", e.state->connect_failures.load()},
      });
      if (c.config->health_check.enabled) {
        endpoints.back()["health"] = e.state->healthy.load() ? "healthy" : "unhealthy";
      }
      if (c.config->circuit_breaker.enabled) {
        const upstream::Breaker& b = e.state->breaker;
        nlohmann::json breaker = {
            {"state", upstream::BreakerStateName(b.state())},
            {"consecutive_failures", b.consecutive_failures()},
            {"openings_in_a_row", b.openings()},
        };
        if (b.state() == upstream::BreakerState::kOpen) {
          absl::Duration left = std::max(b.open_until() - now, absl::ZeroDuration());
          breaker["probe_in_ms"] = absl::ToInt64Milliseconds(left);
        }
        endpoints.back()["breaker"] = std::move(breaker);
      }
    }
    clusters.push_back({
        {"name", c.config->name},
        {"max_connections", c.config->max_connections},
        {"max_requests", c.config->max_requests},
        {"max_pending_requests", c.config->max_pending_requests},
        {"max_retries", c.config->max_retries},
        {"active_connections", c.state->active_connections.load()},
        {"overflow_total", store_->Value(c.stats.overflow)},
        {"active_requests", c.ActiveRequests()},
        {"retry_budget",
         {{"ratio", c.config->retry_budget_ratio},
          {"min_concurrency", c.config->retry_budget_min_concurrency},
          {"retries_active", c.state->retry_budget.in_flight()}}},
        {"upstream_requests_total", store_->Value(c.stats.attempts)},
        {"retries_total", store_->Value(c.stats.retries)},
        {"retry_overflow_total", store_->Value(c.stats.retry_overflow)},
        {"timeouts_total",
         {{"per_try_timeout", store_->Value(c.stats.per_try_timeouts)},
          {"upstream_timeout", store_->Value(c.stats.route_timeouts)},
          {"deadline_exceeded", store_->Value(c.stats.deadline_exceeded)}}},
        {"endpoints", std::move(endpoints)},
    });
    if (c.config->circuit_breaker.enabled) {
      size_t open = 0;
      for (const EndpointRuntime& e : c.endpoints) {
        open += e.state->breaker.state() != upstream::BreakerState::kClosed;
      }
      clusters.back()["circuit_breaker"] = {
          {"state", open == c.endpoints.size() ? "open" : "closed"},
          {"endpoints_ejected", open},
          {"transitions_total",
           {{"open", store_->Value(c.stats.breaker_opened)},
            {"half_open", store_->Value(c.stats.breaker_half_opened)},
            {"closed", store_->Value(c.stats.breaker_closed)}}},
          {"ejections_capped_total", store_->Value(c.stats.ejections_capped)},
          {"circuit_open_total", store_->Value(c.stats.circuit_open)},
          {"lb_panic_total", store_->Value(c.stats.lb_panic)},
      };
    }
  }
  nlohmann::json j = {{"version", snapshot_->version}, {"clusters", std::move(clusters)}};
  return j.dump(2) + "\n";
}

std::string Server::ListenersJson() const {
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& [name, b] : bound_) {
    config::SocketAddress a = b.declared;
    a.port = b.port;
    listeners.push_back(
        {{"name", name}, {"kind", config::ListenerKindName(b.kind)}, {"address", a.ToString()}});
  }
  nlohmann::json j = {{"admin", admin_bound_}, {"listeners", std::move(listeners)}};
  return j.dump(2) + "\n";
}

}  // namespace remora::server
