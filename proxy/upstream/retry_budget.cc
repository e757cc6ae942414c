#include "proxy/upstream/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace remora::upstream {

bool RetryBudget::TryAcquire(double ratio, uint32_t min_concurrency, int64_t active_requests) {
  int64_t limit = std::max<int64_t>(
      min_concurrency,
      static_cast<int64_t>(std::floor(ratio * static_cast<double>(active_requests))));
  int64_t cur = in_flight_.load(std::memory_order_relaxed);
  // Compare-and-swap, so two workers cannot both take the last slot.
  while (cur < limit) {
    if (in_flight_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

}  // namespace remora::upstream
