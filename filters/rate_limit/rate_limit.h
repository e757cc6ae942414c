#pragma once

// Local rate limiting (docs/config.md "rate_limit"): a token bucket per listener and per route,
// optionally one per key (a request header's value, or the client address). A request over a
// limit gets 429 with `x-remora-reason: rate_limited` and `Retry-After` (whole seconds until the
// bucket would admit it, at least 1); gRPC: RESOURCE_EXHAUSTED. The listener's limit is checked
// first, then the matched route's (a request the listener refuses takes no route token).
//
// How close to the configured rate (token_bucket.h): an unkeyed limit is one bucket shared by
// all workers, so over any span D it admits at most burst + rate * D requests. A keyed limit
// keeps each worker's own buckets: a key whose requests all arrive on one worker (one
// connection, or one client on a single-worker proxy) is held to the same bound; a key spread
// over W workers to W times it. The buckets are part of the config snapshot: a config change
// starts them full.

#include <memory>
#include <optional>
#include <vector>

#include "filters/rate_limit/token_bucket.h"
#include "proxy/config/config.h"
#include "proxy/http/filter.h"

namespace remora::filters {

class RateLimiter {
 public:
  RateLimiter(const config::RateLimit& config, int workers);
  // 0: admitted; else nanoseconds until a request of this key would be.
  int64_t Take(const http::RequestHead& head, absl::string_view client_address, int worker,
               int64_t now_ns);

 private:
  const config::RateLimit& config_;
  std::optional<SharedBucket> shared_;                // unkeyed
  std::vector<std::unique_ptr<KeyedBuckets>> keyed_;  // keyed: one per worker
};

// A listener's limiters, built with its snapshot. Null when the listener has none.
struct ListenerRateLimits {
  std::unique_ptr<RateLimiter> listener;
  std::vector<std::unique_ptr<RateLimiter>> routes;  // by route index; null: none

  static std::unique_ptr<ListenerRateLimits> Build(const config::Listener& listener, int workers);
};

class RateLimitFilter final : public http::StreamFilter {
 public:
  static std::unique_ptr<http::StreamFilter> Create(const server::ListenerRuntime& listener);
  static const http::FilterFactory kFactory;

  explicit RateLimitFilter(const server::ListenerRuntime& listener) : listener_(listener) {}
  http::FilterStatus DecodeHeaders(http::RequestHead& head, bool end_stream) override;

 private:
  const server::ListenerRuntime& listener_;
};

}  // namespace remora::filters
