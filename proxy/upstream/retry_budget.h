#pragma once

// A cluster's retry budget (DESIGN.md 3): retries in flight to the cluster, from every worker,
// stay at or below max(min_concurrency, ratio * active requests). During an outage every first
// attempt fails, and without a budget each would bring its retries; with one, the cluster sees at
// most (1 + ratio) times the requests it would see without retries (or min_concurrency more).
//
// Lives in upstream::ClusterState, so it survives config changes and is shared by all workers;
// the ratio and minimum come from the config in force when a retry asks.

#include <atomic>
#include <cstdint>

#include "proxy/upstream/slot.h"

namespace remora::upstream {

class RetryBudget {
 public:
  // Takes one retry slot if the budget allows it with `active_requests` requests in flight to the
  // cluster, and the cluster's hard cap `max_retries` (0: none) does too. Each true must be paired
  // with a Release() when that retry's attempt ends.
  bool TryAcquire(double ratio, uint32_t min_concurrency, uint32_t max_retries,
                  int64_t active_requests);
  void Release() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace remora::upstream
