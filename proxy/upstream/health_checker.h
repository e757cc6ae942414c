#pragma once

// Active HTTP health checking (docs/config.md `health_check`). One checker per process, on the
// main thread: every `interval` it sends `GET path` (HTTP/1.1, Connection: close) to each
// endpoint of each cluster that asks for checks, and reads the status line. A 2xx within
// `timeout` passes; anything else (refused, reset, timed out, another status) fails.
// `unhealthy_threshold` failures in a row take an endpoint out of rotation,
// `healthy_threshold` passes in a row bring it back. Workers see the verdict in
// EndpointState::healthy, which the load balancer reads (load_balancer.h); endpoints start
// healthy, so a proxy that has just started serves at once.
//
// Checks follow the config: after each change Update() starts checking new endpoints, stops
// checking ones that left (an endpoint no longer checked goes back into rotation), and keeps the
// counts of the ones that stayed.

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/stats/stats.h"

namespace remora::server {
struct Snapshot;
}

namespace remora::upstream {

class HealthChecker {
 public:
  HealthChecker(event::UvDispatcher& dispatcher, stats::Writer& stats);
  ~HealthChecker();

  void Update(const server::Snapshot& snapshot);
  size_t targets() const { return targets_.size(); }

 private:
  class Target;
  event::UvDispatcher& dispatcher_;
  stats::Writer& stats_;
  absl::flat_hash_map<std::string, std::unique_ptr<Target>> targets_;  // "cluster|address"
};

}  // namespace remora::upstream
