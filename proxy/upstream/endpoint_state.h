#pragma once

// Per-cluster and per-endpoint state that must survive config changes: a registry update or reload
// builds a new Snapshot, but an endpoint that is still there keeps its counters (and, later, its
// breaker, pool and health), because it is keyed by (cluster, address), not owned by the snapshot.
//
// Fields are atomics: several workers use the same endpoint. The registry itself is main-thread
// only.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "proxy/upstream/breaker.h"
#include "proxy/upstream/retry_budget.h"

namespace remora::upstream {

struct ClusterState;

struct EndpointState {
  EndpointState(std::string a, std::shared_ptr<ClusterState> c);
  ~EndpointState();
  const std::string address;
  const std::shared_ptr<ClusterState> cluster;
  std::atomic<int64_t> active_connections{0};
  std::atomic<uint64_t> total_connections{0};
  std::atomic<uint64_t> connect_failures{0};
  Breaker breaker;
  // Active health checking's verdict (health_checker.h); always true without it.
  std::atomic<bool> healthy{true};
  // Marks the endpoint (un)healthy, keeping the cluster's count; false if it already was.
  bool SetHealthy(bool value);
};

struct ClusterState {
  explicit ClusterState(std::string n) : name(std::move(n)) {}
  const std::string name;
  // Enforces max_connections across all workers: incremented before connecting, so the limit is
  // exact (no per-worker approximation).
  std::atomic<int64_t> active_connections{0};
  // Requests in flight, counted only for clusters with max_requests (an atomic per request is
  // paid only where a limit asks for an exact count).
  std::atomic<int64_t> limited_requests{0};
  // Requests waiting for a connection or stream, counted only for clusters with
  // max_pending_requests.
  std::atomic<int64_t> pending_requests{0};
  RetryBudget retry_budget;
  // Endpoints whose breaker is not closed (open or half-open), for max_ejection_percent; and a
  // hint that lets the load balancer skip the breakers entirely while it is 0. Exact: an endpoint
  // state that goes away gives its slot back.
  std::atomic<int64_t> breakers_open{0};
  // Endpoints health checks have taken out of rotation; like breakers_open, a hint that lets the
  // load balancer skip looking while it is 0. Written by the one health checker only.
  std::atomic<int64_t> unhealthy_endpoints{0};
};

class EndpointStateRegistry {
 public:
  std::shared_ptr<ClusterState> Cluster(const std::string& name);
  // `variant` tells apart states of one address that must not share pooled connections (the
  // cluster's TLS settings: a change of them must not reuse connections made under the old).
  std::shared_ptr<EndpointState> Endpoint(const std::string& cluster, const std::string& address,
                                          const std::string& variant = "");
  // Forgets states no snapshot references any more (use_count == 1). Called after a swap.
  void Prune();

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterState>> clusters_;
  // "cluster|addr|variant"
  absl::flat_hash_map<std::string, std::shared_ptr<EndpointState>> endpoints_;
};

}  // namespace remora::upstream
