#pragma once

// Limits shared by every worker (a cluster's max_connections, max_requests, retry budget) are
// counters in the cluster's shared state; this is how a slot of one is taken.

#include <atomic>
#include <cstdint>

namespace remora::upstream {

// Takes one of `limit` slots counted by `count`, a counter every worker shares: reserve first,
// give back on overflow, so no more than `limit` are ever held at once. False, with nothing
// taken, when all are. The cluster's connection, request and retry limits all use it.
inline bool TryReserve(std::atomic<int64_t>& count, int64_t limit) {
  if (count.fetch_add(1, std::memory_order_relaxed) < limit) return true;
  count.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

}  // namespace remora::upstream
