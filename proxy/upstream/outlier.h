#pragma once

// A cluster's endpoint breakers as the data path feeds them (breaker.h holds the state machine):
// an attempt's outcome goes in, and every transition comes out as a metric
// (remora_cluster_breaker_transitions_total{to}) and a log line naming cluster and endpoint.

#include <cstdint>

#include "absl/time/time.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/breaker.h"

namespace remora::server {
struct ClusterRuntime;
}

namespace remora::upstream {

// An attempt to `endpoint` ended: `failure_class` is FailureClass's bits (0: a success; only the
// classes in the breaker's failure_on count). Gives back the attempt's probe slot, if it held
// one. No-op for clusters without a breaker.
void RecordOutcome(const server::ClusterRuntime& cluster, uint32_t endpoint, uint32_t failure_class,
                   bool probe, absl::Time now, stats::Writer& stats);

// Counts and logs a transition of `endpoint`'s breaker.
void ReportTransition(const server::ClusterRuntime& cluster, uint32_t endpoint,
                      BreakerTransition transition, absl::Time now, stats::Writer& stats);

}  // namespace remora::upstream
