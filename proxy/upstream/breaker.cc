#include "proxy/upstream/breaker.h"

#include <algorithm>

#include "proxy/upstream/endpoint_state.h"
#include "proxy/upstream/slot.h"

namespace remora::upstream {

const char* BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

namespace {

// How long the breaker stays open after `openings` earlier openings in a row.
int64_t OpenNanos(const config::CircuitBreaker& cfg, uint32_t openings) {
  absl::Duration d =
      cfg.open_for * static_cast<double>(uint64_t{1} << std::min<uint32_t>(openings, 30));
  return std::min(absl::ToInt64Nanoseconds(d), absl::ToInt64Nanoseconds(cfg.max_open_for));
}

}  // namespace

uint32_t FailureClass(AttemptEnd end, int status) {
  using config::BreakerFailure;
  switch (end) {
    case AttemptEnd::kResponse:
      if (status < 500) return 0;
      if (status == 502 || status == 503 || status == 504) {
        return config::kBreakOn5xx | config::kBreakOnGatewayError;
      }
      return config::kBreakOn5xx;
    case AttemptEnd::kReset:
      return config::kBreakOnReset;
    case AttemptEnd::kConnectFailure:
      return config::kBreakOnConnectFailure;
    case AttemptEnd::kTimeout:
      return config::kBreakOnTimeout;
  }
  return 0;
}

Breaker::Admission Breaker::Admit(const config::CircuitBreaker& cfg, absl::Time now,
                                  BreakerTransition* transition) {
  *transition = BreakerTransition::kNone;
  BreakerState s = state();
  if (s == BreakerState::kClosed) return Admission::kAdmitted;
  if (s == BreakerState::kOpen) {
    if (absl::ToUnixNanos(now) < open_until_.load(std::memory_order_acquire)) {
      return Admission::kRefused;
    }
    if (state_.compare_exchange_strong(s, BreakerState::kHalfOpen)) {
      *transition = BreakerTransition::kHalfOpened;
    } else if (s != BreakerState::kHalfOpen) {
      return s == BreakerState::kClosed ? Admission::kAdmitted : Admission::kRefused;
    }
  }
  return TryReserve(probes_, cfg.half_open_requests) ? Admission::kProbe : Admission::kRefused;
}

BreakerTransition Breaker::Open(const config::CircuitBreaker& cfg, ClusterState& cluster,
                                size_t endpoints, int64_t now) {
  int64_t cap = static_cast<int64_t>(endpoints * cfg.max_ejection_percent / 100);
  if (!TryReserve(cluster.breakers_open, cap)) {
    consecutive_.store(0, std::memory_order_relaxed);  // count afresh toward the next try
    return BreakerTransition::kCapped;
  }
  BreakerState expected = BreakerState::kClosed;
  // open_until first: a worker that sees the state open reads the time it holds.
  int64_t closed_at = closed_at_.load(std::memory_order_relaxed);
  uint32_t n = openings_.load(std::memory_order_relaxed);
  // Closed for max_open_for since the last time: forgiven, back to the shortest open time.
  if (closed_at != 0 && now - closed_at >= absl::ToInt64Nanoseconds(cfg.max_open_for)) n = 0;
  open_until_.store(now + OpenNanos(cfg, n), std::memory_order_release);
  if (!state_.compare_exchange_strong(expected, BreakerState::kOpen)) {
    cluster.breakers_open.fetch_sub(1, std::memory_order_relaxed);  // another worker opened it
    return BreakerTransition::kNone;
  }
  openings_.store(n + 1, std::memory_order_relaxed);
  consecutive_.store(0, std::memory_order_relaxed);
  window_requests_.store(0, std::memory_order_relaxed);
  window_failures_.store(0, std::memory_order_relaxed);
  return BreakerTransition::kOpened;
}

BreakerTransition Breaker::Record(const config::CircuitBreaker& cfg, ClusterState& cluster,
                                  size_t endpoints, bool failure, bool probe, absl::Time now) {
  int64_t t = absl::ToUnixNanos(now);
  BreakerState s = state();
  if (s != BreakerState::kClosed) {
    if (!probe || s != BreakerState::kHalfOpen) return BreakerTransition::kNone;
    if (failure) {
      // The probe failed: open again, for longer (openings keeps counting).
      uint32_t n = openings_.load(std::memory_order_relaxed);
      open_until_.store(t + OpenNanos(cfg, n), std::memory_order_release);
      if (!state_.compare_exchange_strong(s, BreakerState::kOpen)) return BreakerTransition::kNone;
      openings_.store(n + 1, std::memory_order_relaxed);
      return BreakerTransition::kReopened;
    }
    if (!state_.compare_exchange_strong(s, BreakerState::kClosed)) return BreakerTransition::kNone;
    closed_at_.store(t, std::memory_order_relaxed);
    consecutive_.store(0, std::memory_order_relaxed);
    cluster.breakers_open.fetch_sub(1, std::memory_order_relaxed);
    return BreakerTransition::kClosed;
  }
  bool trip = false;
  if (cfg.failure_ratio > 0) {
    int64_t start = window_start_.load(std::memory_order_relaxed);
    if (t - start >= absl::ToInt64Nanoseconds(cfg.window) &&
        window_start_.compare_exchange_strong(start, t, std::memory_order_relaxed)) {
      window_requests_.store(0, std::memory_order_relaxed);
      window_failures_.store(0, std::memory_order_relaxed);
    }
    uint32_t requests = window_requests_.fetch_add(1, std::memory_order_relaxed) + 1;
    uint32_t failures = failure ? window_failures_.fetch_add(1, std::memory_order_relaxed) + 1
                                : window_failures_.load(std::memory_order_relaxed);
    trip = failure && requests >= cfg.min_requests &&
           static_cast<double>(failures) >= cfg.failure_ratio * static_cast<double>(requests);
  }
  if (!failure) {
    // A success ends a run of failures; the load keeps a healthy endpoint's line unwritten.
    if (consecutive_.load(std::memory_order_relaxed) != 0) {
      consecutive_.store(0, std::memory_order_relaxed);
    }
    return BreakerTransition::kNone;
  }
  uint32_t run = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (cfg.consecutive_failures != 0 && run >= cfg.consecutive_failures) trip = true;
  return trip ? Open(cfg, cluster, endpoints, t) : BreakerTransition::kNone;
}

absl::Time Breaker::open_until() const {
  return absl::FromUnixNanos(open_until_.load(std::memory_order_acquire));
}

void Breaker::Release(ClusterState& cluster) {
  if (state() != BreakerState::kClosed) {
    cluster.breakers_open.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace remora::upstream
