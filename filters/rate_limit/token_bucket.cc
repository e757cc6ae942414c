#include "filters/rate_limit/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace remora::filters {

BucketRate::BucketRate(double requests_per_second, uint32_t burst)
    : interval_ns(std::max<int64_t>(1, std::llround(1e9 / requests_per_second))),
      tolerance_ns(interval_ns * (static_cast<int64_t>(std::max<uint32_t>(burst, 1)) - 1)) {}

int64_t Admit(const BucketRate& rate, int64_t& tat, int64_t now_ns) {
  int64_t start = std::max(tat, now_ns);
  if (start - now_ns > rate.tolerance_ns) return start - now_ns - rate.tolerance_ns;
  tat = start + rate.interval_ns;
  return 0;
}

int64_t SharedBucket::Take(int64_t now_ns) {
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t next = tat;
    if (int64_t wait = Admit(rate_, next, now_ns)) return wait;
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return 0;
  }
}

int64_t KeyedBuckets::Take(absl::string_view key, int64_t now_ns) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);  // most recent first; iterators stay valid
    return Admit(rate_, it->second->tat, now_ns);
  }
  if (index_.size() >= max_keys_) {
    // The least recently used key goes; if it comes back, its bucket starts full.
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{std::string(key), 0});
  index_.emplace(lru_.front().key, lru_.begin());
  return Admit(rate_, lru_.front().tat, now_ns);
}

}  // namespace remora::filters
