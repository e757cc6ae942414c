#include "proxy/stats/metrics.h"

namespace remora::stats {

ListenerStats RegisterListenerStats(Store& s, const std::string& listener) {
  Labels l = {{"listener", listener}};
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
  };
}

ClusterStats RegisterClusterStats(Store& s, const std::string& cluster) {
  Labels l = {{"cluster", cluster}};
  const char* failures_help = "Upstream connection attempts that failed, by reason.";
  const char* timeouts_help =
      "Timeouts by reason: per_try_timeout (an attempt abandoned), upstream_timeout (the route "
      "timeout ended the request), deadline_exceeded (the caller's budget did).";
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
                 "max_connections or max_requests; never "
                 "counted as endpoint failures.",
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
  };
}

ServerStats RegisterServerStats(Store& s) {
  const char* reload_help = "Config reloads (SIGHUP), by result.";
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
  };
}

}  // namespace remora::stats
