#include "proxy/stats/metrics.h"

#include "absl/strings/str_cat.h"
#include "tls/context.h"

namespace remora::stats {

ListenerStats RegisterListenerStats(Store& s, const std::string& listener) {
  Labels l = {{"listener", listener}};
  const char* detect_help =
      "Connections of transparent (inbound/outbound) listeners by detected protocol: http1, "
      "http2, tls, tcp (other bytes), timeout (nothing within detect_timeout: tcp), "
      "server_first (a server-speaks-first port: tcp, without waiting).";
  return ListenerStats{
      s.Register(Type::kCounter, "remora_listener_connections_total",
                 "Downstream connections accepted.", l),
      s.Register(Type::kGauge, "remora_listener_connections_active",
                 "Downstream connections open now.", l),
      s.Register(Type::kCounter, "remora_listener_received_bytes_total",
                 "Bytes received from downstream clients.", l),
      s.Register(Type::kCounter, "remora_listener_sent_bytes_total",
                 "Bytes sent to downstream clients.", l),
      s.Register(Type::kCounter, "remora_listener_accept_errors_total",
                 "accept() failures other than EAGAIN (EMFILE and the like).", l),
      s.Register(
          Type::kCounter, "remora_listener_overflow_total",
          "Downstream connections closed at once because the cluster was at max_connections.", l),
      s.Register(Type::kCounter, "remora_listener_rate_limited_total",
                 "Requests refused with 429 rate_limited by the listener's or a route's "
                 "rate_limit.",
                 l),
      s.Register(Type::kCounter, "remora_listener_unauthorized_total",
                 "Requests refused with 403 unauthorized_peer by a route's authorization rules.",
                 l),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "http1"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "http2"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "tls"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "tcp"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "timeout"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detected_total", detect_help,
                 {{"listener", listener}, {"protocol", "server_first"}}),
      s.Register(Type::kCounter, "remora_listener_protocol_detection_seconds_total",
                 "Time connections waited for protocol detection; divided by "
                 "remora_listener_protocol_detected_total, the mean wait.",
                 l, /*divisor=*/1000000),
  };
}

TlsStats RegisterTlsStats(Store& s, const std::string& scope, const std::string& name) {
  static_assert(TlsStats::kReasons == static_cast<size_t>(tls::HandshakeFailure::kCount) - 1);
  const std::string prefix = absl::StrCat("remora_", scope, "_tls_");
  const char* side = scope == "listener" ? "from clients" : "to endpoints";
  TlsStats t{};
  t.handshakes = s.Register(Type::kCounter, prefix + "handshakes_total",
                            absl::StrCat("TLS handshakes completed ", side, "."), {{scope, name}});
  t.resumed =
      s.Register(Type::kCounter, prefix + "resumed_total",
                 absl::StrCat("TLS handshakes ", side,
                              " that resumed an earlier session (also in tls_handshakes_total)."),
                 {{scope, name}});
  std::string help = absl::StrCat("TLS handshakes ", side, " that failed, by reason: ");
  for (size_t i = 0; i < TlsStats::kReasons; ++i) {
    absl::StrAppend(&help, i == 0 ? "" : ", ",
                    tls::HandshakeFailureName(static_cast<tls::HandshakeFailure>(i + 1)));
  }
  help += ".";
  for (size_t i = 0; i < TlsStats::kReasons; ++i) {
    auto reason = static_cast<tls::HandshakeFailure>(i + 1);
    t.failures[i] = s.Register(Type::kCounter, prefix + "handshake_failures_total", help,
                               {{scope, name}, {"reason", tls::HandshakeFailureName(reason)}});
  }
  t.cert_expiry = s.Register(
      Type::kGauge, prefix + "certificate_expiry_timestamp_seconds",
      "When the certificate in use expires (Unix time); subtract time() for seconds left.",
      {{scope, name}});
  return t;
}

ClusterStats RegisterClusterStats(Store& s, const std::string& cluster) {
  Labels l = {{"cluster", cluster}};
  const char* failures_help = "Upstream connection attempts that failed, by reason.";
  const char* timeouts_help =
      "Timeouts by reason: per_try_timeout (an attempt abandoned), upstream_timeout (the route "
      "timeout ended the request), deadline_exceeded (the caller's budget did).";
  const char* breaker_help =
      "Endpoint breaker transitions: to open (failures, or a failed probe), half_open (open_for "
      "is up), closed (a probe succeeded).";
  const char* health_help = "Active health checks by result (health_check).";
  return ClusterStats{
      s.Register(Type::kCounter, "remora_cluster_upstream_connections_total",
                 "Upstream connections established.", l),
      s.Register(Type::kGauge, "remora_cluster_upstream_connections_active",
                 "Upstream connections open now (including ones still connecting).", l),
      s.Register(Type::kCounter, "remora_cluster_upstream_connect_failures_total", failures_help,
                 {{"cluster", cluster}, {"reason", "refused"}}),
      s.Register(Type::kCounter, "remora_cluster_upstream_connect_failures_total", failures_help,
                 {{"cluster", cluster}, {"reason", "timeout"}}),
      s.Register(Type::kCounter, "remora_cluster_upstream_connect_failures_total", failures_help,
                 {{"cluster", cluster}, {"reason", "local"}}),
      s.Register(Type::kCounter, "remora_cluster_overflow_total",
                 "Connections or requests refused locally because the cluster was at "
                 "max_connections, max_requests or max_pending_requests; never counted as "
                 "endpoint failures.",
                 l),
      s.Register(Type::kCounter, "remora_cluster_upstream_received_bytes_total",
                 "Bytes received from upstream endpoints.", l),
      s.Register(Type::kCounter, "remora_cluster_upstream_sent_bytes_total",
                 "Bytes sent to upstream endpoints.", l),
      s.Register(Type::kCounter, "remora_cluster_upstream_requests_total",
                 "Requests sent to the cluster's endpoints: every attempt, retries included.", l),
      s.Register(Type::kCounter, "remora_cluster_retries_total",
                 "Attempts after the first one (the route's retry policy).", l),
      s.Register(Type::kCounter, "remora_cluster_retry_overflow_total",
                 "Failures the retry policy would have retried, not retried because the "
                 "cluster's retry budget was spent.",
                 l),
      s.Register(Type::kCounter, "remora_cluster_timeouts_total", timeouts_help,
                 {{"cluster", cluster}, {"reason", "per_try_timeout"}}),
      s.Register(Type::kCounter, "remora_cluster_timeouts_total", timeouts_help,
                 {{"cluster", cluster}, {"reason", "upstream_timeout"}}),
      s.Register(Type::kCounter, "remora_cluster_timeouts_total", timeouts_help,
                 {{"cluster", cluster}, {"reason", "deadline_exceeded"}}),
      s.Register(Type::kGauge, "remora_cluster_retries_active",
                 "Retries in flight now (backing off or running), all workers.", l),
      s.Register(Type::kGauge, "remora_cluster_requests_active",
                 "Requests routed to the cluster and not yet ended, all workers.", l),
      s.Register(Type::kCounter, "remora_cluster_breaker_transitions_total", breaker_help,
                 {{"cluster", cluster}, {"to", "open"}}),
      s.Register(Type::kCounter, "remora_cluster_breaker_transitions_total", breaker_help,
                 {{"cluster", cluster}, {"to", "half_open"}}),
      s.Register(Type::kCounter, "remora_cluster_breaker_transitions_total", breaker_help,
                 {{"cluster", cluster}, {"to", "closed"}}),
      s.Register(Type::kCounter, "remora_cluster_ejections_capped_total",
                 "Endpoint breakers that would have opened but were kept closed by "
                 "max_ejection_percent.",
                 l),
      s.Register(Type::kGauge, "remora_cluster_endpoints_ejected",
                 "Endpoints whose breaker is open or half-open now.", l),
      s.Register(Type::kCounter, "remora_cluster_circuit_open_total",
                 "Requests failed fast (503 circuit_open) or given the route's fallback because "
                 "every endpoint's breaker was open.",
                 l),
      s.Register(Type::kCounter, "remora_cluster_lb_panic_total",
                 "Endpoint picks that used every endpoint because fewer than "
                 "panic_threshold_percent of them were available (healthy, breaker closed).",
                 l),
      s.Register(Type::kCounter, "remora_cluster_health_checks_total", health_help,
                 {{"cluster", cluster}, {"result", "passed"}}),
      s.Register(Type::kCounter, "remora_cluster_health_checks_total", health_help,
                 {{"cluster", cluster}, {"result", "failed"}}),
      s.Register(Type::kGauge, "remora_cluster_endpoints_unhealthy",
                 "Endpoints active health checks have taken out of rotation now.", l),
  };
}

ServerStats RegisterServerStats(Store& s) {
  const char* reload_help = "Config reloads (SIGHUP), by result.";
  const char* tls_reload_help =
      "Certificate, key or trust-bundle changes seen on disk, by result: success (new handshakes "
      "use them) or failure (unreadable or mismatched; the previous ones keep serving).";
  return ServerStats{
      s.Register(Type::kCounter, "remora_config_reloads_total", reload_help,
                 {{"result", "success"}}),
      s.Register(Type::kCounter, "remora_config_reloads_total", reload_help,
                 {{"result", "failure"}}),
      s.Register(Type::kGauge, "remora_config_version", "Version of the config now serving."),
      s.Register(Type::kGauge, "remora_workers", "Worker threads."),
      s.Register(Type::kGauge, "remora_draining", "1 while the proxy drains, else 0."),
      s.Register(Type::kGauge, "remora_build_info", "Always 1; the version is a label.",
                 {{"version", REMORA_VERSION}}),
      s.Register(Type::kGauge, "remora_process_start_time_seconds",
                 "Start time of the process since the Unix epoch."),
      s.Register(Type::kGauge, "remora_process_open_fds", "Open file descriptors."),
      s.Register(Type::kGauge, "remora_process_resident_memory_bytes", "Resident set size."),
      s.Register(Type::kCounter, "remora_tls_certificate_reloads_total", tls_reload_help,
                 {{"result", "success"}}),
      s.Register(Type::kCounter, "remora_tls_certificate_reloads_total", tls_reload_help,
                 {{"result", "failure"}}),
  };
}

}  // namespace remora::stats
