#include "proxy/upstream/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace remora::upstream {

bool RetryBudget::TryAcquire(double ratio, uint32_t min_concurrency, uint32_t max_retries,
                             int64_t active_requests) {
  int64_t limit = std::max<int64_t>(
      min_concurrency,
      static_cast<int64_t>(std::floor(ratio * static_cast<double>(active_requests))));
  if (max_retries != 0) limit = std::min<int64_t>(limit, max_retries);
  return TryReserve(in_flight_, limit);
}

}  // namespace remora::upstream
