#pragma once

// The per-endpoint circuit breaker, which is outlier ejection (DESIGN.md 3), and the cluster
// breaker it makes. Configured per cluster (`circuit_breaker`, docs/config.md).
//
//   Closed    takes traffic. Opens after `consecutive_failures` failures in a row, or when the
//             failures within the current `window` reach `failure_ratio` of at least
//             `min_requests` requests. Only the classes in `failure_on` count; a local overflow,
//             a caller's deadline or a caller going away never does.
//   Open      takes no traffic for open_for * 2^(openings - 1), capped at max_open_for. An endpoint
//             that stayed closed for max_open_for since it last closed starts again at open_for.
//   Half-Open once that time is up, the next request to pick it becomes a probe; at most
//             `half_open_requests` probes at once. A probe's success closes the breaker, its
//             failure opens it again (for longer). Outcomes of requests that are not probes do not
//             move an endpoint that is not closed (they were sent before it opened, or in panic).
//
// At most max_ejection_percent of the cluster's endpoints are open at once: an endpoint that
// would pass the cap stays closed. The cluster breaker is open while every endpoint's breaker is
// (none due for a probe): requests fail fast (503 circuit_open) or get the route's fallback.
// Below the cluster's panic_threshold_percent of endpoints available (but some breaker closed),
// the load balancer ignores the breakers and uses every endpoint (load_balancer.h).
//
// The state is atomics in EndpointState, shared by every worker and kept across config changes.
// Transitions are compare-and-swap, so each happens once however many workers see the failure
// that causes it. Approximations: the ratio window is fixed (it restarts when a request finds it
// expired) and its counts can miss a request racing the restart; a few failures racing an opening
// are counted toward nothing. The ejection cap is exact (a reserved slot, like max_requests).

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "proxy/config/config.h"

namespace remora::upstream {

struct ClusterState;

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };
const char* BreakerStateName(BreakerState s);

// A change of an endpoint's breaker, for the caller's metrics and log line.
enum class BreakerTransition : uint8_t {
  kNone,
  kOpened,      // closed -> open
  kReopened,    // half-open -> open (a probe failed)
  kHalfOpened,  // open -> half-open (open_for is up)
  kClosed,      // half-open -> closed (a probe succeeded)
  kCapped,      // would have opened, but max_ejection_percent of the cluster is open already
};

class Breaker {
 public:
  enum class Admission : uint8_t { kRefused, kAdmitted, kProbe };

  BreakerState state() const { return state_.load(std::memory_order_acquire); }
  // May a request go to this endpoint now? An open breaker whose time is up turns half-open
  // here (reported in `transition`), and a half-open one hands out probe slots; each kProbe must
  // be returned with ReleaseProbe when its attempt ends.
  Admission Admit(const config::CircuitBreaker& cfg, absl::Time now, BreakerTransition* transition);
  void ReleaseProbe() { probes_.fetch_sub(1, std::memory_order_relaxed); }

  // An attempt's outcome (failure: of a class in failure_on). `endpoints` is the cluster's count,
  // for the ejection cap.
  BreakerTransition Record(const config::CircuitBreaker& cfg, ClusterState& cluster,
                           size_t endpoints, bool failure, bool probe, absl::Time now);

  // When an open breaker is due for a probe (for /clusters).
  absl::Time open_until() const;
  uint32_t openings() const { return openings_.load(std::memory_order_relaxed); }
  uint32_t consecutive_failures() const { return consecutive_.load(std::memory_order_relaxed); }

  // The endpoint's state is going away: gives back its slot in the cluster's ejection count.
  void Release(ClusterState& cluster);

 private:
  BreakerTransition Open(const config::CircuitBreaker& cfg, ClusterState& cluster, size_t endpoints,
                         int64_t now);

  std::atomic<BreakerState> state_{BreakerState::kClosed};
  std::atomic<uint32_t> consecutive_{0};
  std::atomic<int64_t> window_start_{0};  // unix ns
  std::atomic<uint32_t> window_requests_{0};
  std::atomic<uint32_t> window_failures_{0};
  std::atomic<int64_t> open_until_{0};  // unix ns
  std::atomic<int64_t> closed_at_{0};   // unix ns; 0: never opened
  std::atomic<uint32_t> openings_{0};   // in a row, for the growing open time
  std::atomic<int64_t> probes_{0};
};

// Which failure class an attempt's end falls in, 0 if none: a response status (0: no response),
// or one of the failure kinds below.
enum class AttemptEnd : uint8_t { kResponse, kReset, kConnectFailure, kTimeout };
uint32_t FailureClass(AttemptEnd end, int status);

}  // namespace remora::upstream
