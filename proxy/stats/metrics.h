#pragma once

// Every metric remora exports, registered in one place so names stay fixed and match
// docs/metrics.md. Naming: `remora_` prefix, `_total` for counters, base units (seconds, bytes),
// bounded labels only (listener, cluster, result, reason).

#include <cstdint>
#include <string>

#include "proxy/stats/stats.h"

namespace remora::tls {
enum class HandshakeFailure : uint8_t;  // tls/context.h
}

namespace remora::stats {

struct ListenerStats {
  uint32_t cx_total;       // remora_listener_connections_total
  uint32_t cx_active;      // remora_listener_connections_active
  uint32_t rx_bytes;       // remora_listener_received_bytes_total
  uint32_t tx_bytes;       // remora_listener_sent_bytes_total
  uint32_t accept_errors;  // remora_listener_accept_errors_total
  uint32_t overflow;       // remora_listener_overflow_total: refused, cluster at max_connections
  uint32_t rate_limited;   // remora_listener_rate_limited_total: 429 rate_limited
  uint32_t unauthorized;   // remora_listener_unauthorized_total: 403 unauthorized_peer
  // remora_listener_protocol_detected_total{protocol}: transparent listeners' connections by
  // what they turned out to speak.
  uint32_t detected_http1;         // protocol="http1"
  uint32_t detected_http2;         // protocol="http2"
  uint32_t detected_tls;           // protocol="tls"
  uint32_t detected_tcp;           // protocol="tcp": other bytes
  uint32_t detected_timeout;       // protocol="timeout": nothing within detect_timeout
  uint32_t detected_server_first;  // protocol="server_first": by port, without waiting
  uint32_t detection_micros;       // remora_listener_protocol_detection_seconds_total (in µs)
};

struct ClusterStats {
  uint32_t cx_total;         // remora_cluster_upstream_connections_total
  uint32_t cx_active;        // remora_cluster_upstream_connections_active
  uint32_t connect_refused;  // remora_cluster_upstream_connect_failures_total{reason="refused"}
  uint32_t connect_timeout;  // ...{reason="timeout"}
  uint32_t connect_local;    // ...{reason="local"}: this process could not open the socket
  uint32_t overflow;         // remora_cluster_overflow_total
  uint32_t rx_bytes;         // remora_cluster_upstream_received_bytes_total
  uint32_t tx_bytes;         // remora_cluster_upstream_sent_bytes_total
  uint32_t attempts;         // remora_cluster_upstream_requests_total: every attempt, retries too
  uint32_t retries;          // remora_cluster_retries_total
  uint32_t retry_overflow;   // remora_cluster_retry_overflow_total: not retried, budget spent
  // remora_cluster_timeouts_total{reason}: attempts abandoned at the per-try timeout, requests
  // ended by the route timeout, and by the caller's deadline (on arrival or while waiting).
  uint32_t per_try_timeouts;   // reason="per_try_timeout"
  uint32_t route_timeouts;     // reason="upstream_timeout"
  uint32_t deadline_exceeded;  // reason="deadline_exceeded"
  uint32_t retries_active;     // remora_cluster_retries_active (sampled at scrape)
  uint32_t requests_active;    // remora_cluster_requests_active (sampled at scrape)
  // remora_cluster_breaker_transitions_total{to}: endpoint breakers changing state.
  uint32_t breaker_opened;       // to="open"
  uint32_t breaker_half_opened;  // to="half_open"
  uint32_t breaker_closed;       // to="closed"
  uint32_t ejections_capped;     // remora_cluster_ejections_capped_total
  uint32_t endpoints_ejected;    // remora_cluster_endpoints_ejected (sampled at scrape)
  uint32_t circuit_open;         // remora_cluster_circuit_open_total: requests failed fast
  uint32_t lb_panic;             // remora_cluster_lb_panic_total: picks in panic
  // remora_cluster_health_checks_total{result}
  uint32_t health_checks_passed;  // result="passed"
  uint32_t health_checks_failed;  // result="failed"
  uint32_t endpoints_unhealthy;   // remora_cluster_endpoints_unhealthy (sampled at scrape)
};

struct ServerStats {
  uint32_t reloads_ok;          // remora_config_reloads_total{result="success"}
  uint32_t reloads_failed;      // remora_config_reloads_total{result="failure"}
  uint32_t config_version;      // remora_config_version
  uint32_t workers;             // remora_workers
  uint32_t draining;            // remora_draining
  uint32_t build_info;          // remora_build_info{version}
  uint32_t start_time;          // remora_process_start_time_seconds
  uint32_t open_fds;            // remora_process_open_fds (sampled at scrape)
  uint32_t resident_bytes;      // remora_process_resident_memory_bytes (sampled at scrape)
  uint32_t tls_reloads_ok;      // remora_tls_certificate_reloads_total{result="success"}
  uint32_t tls_reloads_failed;  // ...{result="failure"}
};

// TLS handshakes of a listener (server side) or a cluster (client side), registered only where
// TLS is configured.
struct TlsStats {
  // tls::HandshakeFailure's values but kNone (the first) and kCount (the last).
  static constexpr size_t kReasons = 11;
  uint32_t handshakes;  // remora_{listener,cluster}_tls_handshakes_total
  uint32_t resumed;     // remora_{listener,cluster}_tls_resumed_total
  // remora_{listener,cluster}_tls_handshake_failures_total{reason}, by HandshakeFailure - 1.
  uint32_t failures[kReasons];
  uint32_t cert_expiry;  // remora_{listener,cluster}_tls_certificate_expiry_timestamp_seconds

  uint32_t failure(tls::HandshakeFailure reason) const {
    return failures[static_cast<size_t>(reason) - 1];
  }
};
// `scope` is "listener" or "cluster", `name` its name.
TlsStats RegisterTlsStats(Store& store, const std::string& scope, const std::string& name);

ListenerStats RegisterListenerStats(Store& store, const std::string& listener);
ClusterStats RegisterClusterStats(Store& store, const std::string& cluster);
ServerStats RegisterServerStats(Store& store);

}  // namespace remora::stats
