#pragma once

// Token buckets for local rate limiting, as GCRA (the generic cell rate algorithm): a bucket is
// one number, the theoretical arrival time `tat` of the next request at the sustained rate. A
// request at `now` is admitted when tat - now <= (burst - 1) * interval, and moves tat one
// interval on from max(tat, now). Over any span D this admits at most burst + rate * D requests,
// which is a token bucket of `burst` tokens refilled at `rate`.
//
// SharedBucket is one atomic, shared by every worker (one compare-and-swap per request), so an
// unkeyed limit is exact across workers. KeyedBuckets is a worker's own LRU of buckets (no lock
// on the data path): a key's requests on one worker are limited exactly, and a key whose
// connections land on W workers gets at most W times the limit.

#include <atomic>
#include <cstdint>
#include <list>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace remora::filters {

struct BucketRate {
  BucketRate(double requests_per_second, uint32_t burst);
  int64_t interval_ns;   // 1 / rate
  int64_t tolerance_ns;  // (burst - 1) * interval
};

// 0: admitted (the bucket is updated); else how long until a request would be.
int64_t Admit(const BucketRate& rate, int64_t& tat, int64_t now_ns);

class SharedBucket {
 public:
  explicit SharedBucket(BucketRate rate) : rate_(rate) {}
  int64_t Take(int64_t now_ns);

 private:
  const BucketRate rate_;
  alignas(64) std::atomic<int64_t> tat_{0};
};

class KeyedBuckets {
 public:
  KeyedBuckets(BucketRate rate, uint32_t max_keys) : rate_(rate), max_keys_(max_keys) {}
  int64_t Take(absl::string_view key, int64_t now_ns);
  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string key;
    int64_t tat;
  };
  const BucketRate rate_;
  const uint32_t max_keys_;
  std::list<Entry> lru_;  // most recently used first
  absl::flat_hash_map<absl::string_view, std::list<Entry>::iterator> index_;  // views into lru_
};

}  // namespace remora::filters
