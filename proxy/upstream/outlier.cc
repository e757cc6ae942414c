#include "proxy/upstream/outlier.h"

#include "absl/time/time.h"
#include "proxy/common/log.h"
#include "proxy/server/snapshot.h"

namespace remora::upstream {

void RecordOutcome(const server::ClusterRuntime& cluster, uint32_t endpoint, uint32_t failure_class,
                   bool probe, absl::Time now, stats::Writer& stats) {
  const config::CircuitBreaker& cfg = cluster.config->circuit_breaker;
  if (!cfg.enabled) return;
  Breaker& b = cluster.endpoints[endpoint].state->breaker;
  bool failure = (failure_class & cfg.failure_on) != 0;
  BreakerTransition t =
      b.Record(cfg, *cluster.state, cluster.endpoints.size(), failure, probe, now);
  if (probe) b.ReleaseProbe();
  if (t != BreakerTransition::kNone) ReportTransition(cluster, endpoint, t, now, stats);
}

void ReportTransition(const server::ClusterRuntime& cluster, uint32_t endpoint,
                      BreakerTransition transition, absl::Time now, stats::Writer& stats) {
  const std::string& name = cluster.config->name;
  const server::EndpointRuntime& ep = cluster.endpoints[endpoint];
  const Breaker& b = ep.state->breaker;
  const config::CircuitBreaker& cfg = cluster.config->circuit_breaker;
  switch (transition) {
    case BreakerTransition::kNone:
      return;
    case BreakerTransition::kOpened:
    case BreakerTransition::kReopened:
      stats.Add(cluster.stats.breaker_opened);
      LOG_WARN("cluster %s: endpoint %s breaker open for %s (%s, opening %d in a row)", name,
               ep.address_text, absl::FormatDuration(b.open_until() - now),
               transition == BreakerTransition::kOpened ? "failures" : "its probe failed",
               b.openings());
      return;
    case BreakerTransition::kHalfOpened:
      stats.Add(cluster.stats.breaker_half_opened);
      LOG_INFO("cluster %s: endpoint %s breaker half-open, up to %d probe(s)", name,
               ep.address_text, cfg.half_open_requests);
      return;
    case BreakerTransition::kClosed:
      stats.Add(cluster.stats.breaker_closed);
      LOG_INFO("cluster %s: endpoint %s breaker closed (its probe succeeded)", name,
               ep.address_text);
      return;
    case BreakerTransition::kCapped:
      // Can recur on every failure while the cap holds: counted, and logged only at debug.
      stats.Add(cluster.stats.ejections_capped);
      LOG_DEBUG("cluster %s: endpoint %s would be ejected, but %d%% of the cluster is already",
                name, ep.address_text, cfg.max_ejection_percent);
      return;
  }
}

}  // namespace remora::upstream
