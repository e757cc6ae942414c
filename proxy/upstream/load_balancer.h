#pragma once

// How a request (or a TCP connection) picks its endpoint: the cluster's `lb_policy`
// (docs/config.md).
//   round_robin    in turn, weighted (each endpoint `weight` times per cycle, interleaved);
//   random         weighted random;
//   least_request  power of two choices (the default): two endpoints drawn at random, the one
//                  with fewer requests in flight per unit of weight wins. The counts are this
//                  worker's own (no shared cache line per request): each worker balances what
//                  it sends, which is what a per-pod sidecar with a few workers needs;
//   ring_hash      consistent hashing on a header or the client address: a key stays on one
//                  endpoint, and an endpoint leaving moves only the keys it had (~1/N).
// A retry passes the endpoints its request already tried; another one is chosen while any is
// left (ring_hash: the next one clockwise).
//
// Zones: when the proxy's `zone` is set and the cluster has endpoints in it and elsewhere, a
// request goes to an endpoint in the zone (by the same policy, among those), while they are all
// in rotation; as some leave it, a growing share spills to the whole cluster (PreferLocal).
// ring_hash ignores zones: a key keeps its endpoint. A retry whose zone is all tried goes out.
//
// Endpoints out of rotation are skipped: a circuit_breaker's open ones (breaker.h), and ones
// failing active health checks (health_checker.h); an open one due for a probe takes the request
// as its probe. While every endpoint is in rotation this costs two loads of shared counters.
// Every breaker open: no pick (the cluster breaker is open). Fewer available (healthy, closed)
// than panic_threshold_percent: every endpoint is used (panic).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxy/config/config.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/breaker.h"

namespace remora::server {
struct ClusterRuntime;
}

namespace remora::upstream {

struct LbTables {
  // Endpoint indices, each endpoint weight/gcd times (scaled down if the cycle would pass 64 Ki
  // entries), interleaved smoothly. Empty when all weights are equal.
  std::vector<uint32_t> weighted;
  struct Point {
    uint64_t hash;
    uint32_t endpoint;
  };
  std::vector<Point> ring;  // ring_hash only; sorted by hash
  // With the proxy's zone known and the cluster's endpoints in it and in others: those in it,
  // and their weighted cycle (as `weighted`). Empty otherwise, and for ring_hash.
  std::vector<uint32_t> local;
  std::vector<uint32_t> local_weighted;

  static LbTables Build(const config::Cluster& cluster, const std::string& local_zone);
};

struct LbRequest {
  uint64_t hash = 0;  // ring_hash: the key's HashKey; without one the pick is random
  bool has_hash = false;
  uint64_t tried = 0;  // bit i: endpoint i was tried already (the first 64 endpoints)
};

struct LbPick {
  uint32_t endpoint = 0;  // index in cluster.endpoints
  // The attempt is the probe of a half-open breaker: end it with RecordOutcome (or, if it never
  // produced one, Breaker::ReleaseProbe).
  bool probe = false;
  bool circuit_open = false;  // every endpoint's breaker is open: nothing was picked
  // Nothing may take the request: every endpoint is unhealthy or open, and panic is off (or
  // breakers opened while the pick looked). Nothing was picked.
  bool none_available = false;
};

// Picks by the cluster's policy and breakers. Breaker transitions it causes (open -> half-open)
// are counted in `stats` and logged.
LbPick PickEndpoint(const server::ClusterRuntime& cluster, int worker, const LbRequest& req,
                    absl::Time now, stats::Writer& stats);

// A 64-bit hash that is the same in every process and build (ring positions must not move
// when a sidecar restarts).
uint64_t HashKey(absl::string_view key);

}  // namespace remora::upstream
