#include "proxy/upstream/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace remora::upstream {

bool RetryBudget::TryAcquire(double ratio, uint32_t min_concurrency, int64_t active_requests) {
  int64_t limit = std::max<int64_t>(
      min_concurrency,
      static_cast<int64_t>(std::floor(ratio * static_cast<double>(active_requests))));
  return TryReserve(in_flight_, limit);
}

}  // namespace remora::upstream
