#pragma once

// The immutable runtime view of one config version: the decoded Config plus what the data path
// needs precomputed (socket addresses, stat slots, links to per-endpoint state). Built on the main
// thread, shared read-only by every worker through shared_ptr<const Snapshot>; a connection keeps
// the snapshot it started with until it ends, so a reload never changes a connection mid-flight.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proxy/config/config.h"
#include "proxy/http/filter.h"
#include "proxy/http/route_table.h"
#include "proxy/stats/metrics.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/endpoint_state.h"

namespace remora::server {

struct EndpointRuntime {
  sockaddr_storage address;
  std::string address_text;
  uint32_t weight;
  std::shared_ptr<upstream::EndpointState> state;
};

struct ClusterRuntime {
  const config::Cluster* config;
  std::vector<EndpointRuntime> endpoints;
  std::shared_ptr<upstream::ClusterState> state;
  stats::ClusterStats stats;
  // Round-robin position per worker: written only by its worker, padded against false sharing.
  struct alignas(64) PerWorker {
    mutable uint64_t rr_next = 0;
  };
  std::unique_ptr<PerWorker[]> per_worker;
};

struct ListenerRuntime {
  const config::Listener* config;
  const ClusterRuntime* cluster;  // tcp listeners
  stats::ListenerStats stats;
  // http listeners: the routes and the filter chain (decode order; the router follows).
  http::RouteTable routes;
  absl::Span<const http::FilterFactory* const> filters;
};

struct Snapshot {
  uint64_t version = 0;
  config::Config config;
  std::vector<ClusterRuntime> clusters;
  std::vector<ListenerRuntime> listeners;

  const ClusterRuntime* FindCluster(const std::string& name) const;
  const ListenerRuntime* FindListener(const std::string& name) const;
};

// Builds a snapshot from a validated config. Registers stat series (main thread).
std::shared_ptr<const Snapshot> BuildSnapshot(config::Config config, uint64_t version, int workers,
                                              stats::Store& stats,
                                              upstream::EndpointStateRegistry& endpoints);

}  // namespace remora::server
