#pragma once

// The immutable runtime view of one config version: the decoded Config plus what the data path
// needs precomputed (socket addresses, stat slots, links to per-endpoint state). Built on the main
// thread, shared read-only by every worker through shared_ptr<const Snapshot>; a connection keeps
// the snapshot it started with until it ends, so a reload never changes a connection mid-flight.

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "filters/rate_limit/rate_limit.h"
#include "proxy/config/config.h"
#include "proxy/http/filter.h"
#include "proxy/http/route_table.h"
#include "proxy/stats/metrics.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/endpoint_state.h"
#include "proxy/upstream/load_balancer.h"
#include "tls/context.h"

namespace remora::server {

struct EndpointRuntime {
  sockaddr_storage address;
  std::string address_text;
  uint32_t weight;
  std::shared_ptr<upstream::EndpointState> state;
  // Connect from `source` (an original_dst cluster's inbound delivery, from 127.0.0.6).
  bool bind_source = false;
  sockaddr_storage source;
};

struct ClusterRuntime {
  const config::Cluster* config;
  std::vector<EndpointRuntime> endpoints;
  std::shared_ptr<upstream::ClusterState> state;
  stats::ClusterStats stats;
  // Per worker, written only by its worker, padded against false sharing: the round-robin
  // position, and the requests in flight to the cluster (read by every worker, only when a retry
  // asks the budget, so the count costs the data path no shared cache line).
  struct alignas(64) PerWorker {
    mutable uint64_t rr_next = 0;
    mutable uint64_t rr_local = 0;  // round robin within the local zone
    mutable std::atomic<int64_t> active_requests{0};
    // Requests in flight from this worker, per endpoint (least_request).
    std::unique_ptr<int32_t[]> active;
  };
  std::unique_ptr<PerWorker[]> per_worker;
  size_t worker_count = 0;
  upstream::LbTables lb;
  // With tls: the client context its connections originate TLS with, and its handshake stats.
  std::shared_ptr<const tls::Context> tls;
  stats::TlsStats tls_stats{};

  // An attempt to endpoint `i` starts (+1) or ends (-1), on `worker`.
  void AddEndpointActive(int worker, uint32_t i, int32_t delta) const {
    per_worker[static_cast<size_t>(worker)].active[i] += delta;
  }

  // Requests in flight to this cluster under this snapshot, all workers.
  int64_t ActiveRequests() const;
  // Its worker's count, changed by the worker alone (a plain load and store, no locked op).
  void AddActiveRequest(int worker, int64_t delta) const {
    std::atomic<int64_t>& n = per_worker[static_cast<size_t>(worker)].active_requests;
    n.store(n.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
};

struct ListenerRuntime {
  const config::Listener* config;
  const ClusterRuntime* cluster;  // tcp listeners
  stats::ListenerStats stats;
  // http listeners: the routes and the filter chain (decode order; the router follows).
  http::RouteTable routes;
  absl::Span<const http::FilterFactory* const> filters;
  // Transparent listeners: config.tls_routes' clusters, in the same order.
  std::vector<const ClusterRuntime*> tls_route_clusters;
  // Transparent listeners with passthrough: the original_dst cluster of the listener's direction
  // (else null), and the route a request no route matches takes to it: no timeout, retries or
  // header changes, since the app made the call and gets what its destination answers.
  const ClusterRuntime* passthrough = nullptr;
  std::shared_ptr<const config::Route> passthrough_route_config;
  http::CompiledRoute passthrough_route;
  // Its rate limits (filters/rate_limit), null without any; the chain then has no rate_limit.
  std::shared_ptr<filters::ListenerRateLimits> rate_limits;
  // With tls: the server context its connections terminate TLS with, and its handshake stats.
  std::shared_ptr<const tls::Context> tls;
  stats::TlsStats tls_stats{};
};

// The TLS contexts a config needs, loaded from its files (main thread, before a swap: a file
// that cannot be loaded rejects the whole config, which then changes nothing).
struct TlsContexts {
  absl::flat_hash_map<std::string, std::shared_ptr<const tls::Context>> listeners;
  absl::flat_hash_map<std::string, std::shared_ptr<const tls::Context>> clusters;
  // The files they were made from, by path, each read once.
  absl::flat_hash_map<std::string, std::string> files;
};
absl::StatusOr<TlsContexts> LoadTlsContexts(const config::Config& config);

// ALPN offers in wire format, for the pools' TLS connections.
inline constexpr absl::string_view kAlpnHttp2{"\x02h2", 3};
inline constexpr absl::string_view kAlpnHttp1{"\x08http/1.1", 9};

struct Snapshot {
  uint64_t version = 0;
  config::Config config;
  std::vector<ClusterRuntime> clusters;
  std::vector<ListenerRuntime> listeners;

  const ClusterRuntime* FindCluster(const std::string& name) const;
  const ListenerRuntime* FindListener(const std::string& name) const;
};

// Builds a snapshot from a validated config. Registers stat series (main thread).
// `tls`: the contexts LoadTlsContexts gave for this config (null: it has no tls).
std::shared_ptr<const Snapshot> BuildSnapshot(config::Config config, uint64_t version, int workers,
                                              stats::Store& stats,
                                              upstream::EndpointStateRegistry& endpoints,
                                              const TlsContexts* tls = nullptr);

}  // namespace remora::server
