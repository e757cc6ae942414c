#include "filters/rate_limit/rate_limit.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::filters {

RateLimiter::RateLimiter(const config::RateLimit& config, int workers) : config_(config) {
  BucketRate rate(config.requests_per_second, config.burst);
  if (!config.keyed()) {
    shared_.emplace(rate);
    return;
  }
  for (int w = 0; w < workers; ++w) {
    keyed_.push_back(std::make_unique<KeyedBuckets>(rate, config.max_keys));
  }
}

int64_t RateLimiter::Take(const http::RequestHead& head, absl::string_view client_address,
                          int worker, int64_t now_ns) {
  if (shared_.has_value()) return shared_->Take(now_ns);
  // Requests without the header share one bucket (the empty key).
  absl::string_view key =
      config_.key_client_address ? client_address : head.headers.Get(config_.key_header);
  return keyed_[static_cast<size_t>(worker)]->Take(key, now_ns);
}

std::unique_ptr<ListenerRateLimits> ListenerRateLimits::Build(const config::Listener& listener,
                                                              int workers) {
  auto limits = std::make_unique<ListenerRateLimits>();
  bool any = false;
  if (listener.has_rate_limit) {
    limits->listener = std::make_unique<RateLimiter>(listener.rate_limit, workers);
    any = true;
  }
  for (const config::Route& r : listener.routes) {
    limits->routes.push_back(r.has_rate_limit ? std::make_unique<RateLimiter>(r.rate_limit, workers)
                                              : nullptr);
    any = any || r.has_rate_limit;
  }
  if (!any) return nullptr;
  return limits;
}

const http::FilterFactory RateLimitFilter::kFactory{"rate_limit", &RateLimitFilter::Create};

std::unique_ptr<http::StreamFilter> RateLimitFilter::Create(
    const server::ListenerRuntime& listener) {
  return std::make_unique<RateLimitFilter>(listener);
}

http::FilterStatus RateLimitFilter::DecodeHeaders(http::RequestHead& head, bool) {
  ListenerRateLimits& limits = *listener_.rate_limits;
  server::WorkerContext& worker = callbacks_->worker();
  int64_t now = absl::ToUnixNanos(callbacks_->dispatcher().Now());
  absl::string_view client = callbacks_->info().downstream_address;
  int64_t wait = 0;
  if (limits.listener != nullptr) wait = limits.listener->Take(head, client, worker.index, now);
  if (wait == 0 && !limits.routes.empty()) {
    const http::CompiledRoute* route = callbacks_->info().route;
    if (route != nullptr && route != &listener_.passthrough_route) {
      size_t i = static_cast<size_t>(route->config - listener_.config->routes.data());
      if (RateLimiter* r = limits.routes[i].get()) wait = r->Take(head, client, worker.index, now);
    }
  }
  if (wait == 0) return http::FilterStatus::kContinue;
  worker.stats.Add(listener_.stats.rate_limited);
  // Whole seconds, rounded up: a client that waits that long finds a token.
  int64_t seconds = std::max<int64_t>(1, (wait + 999'999'999) / 1'000'000'000);
  std::string retry_after = absl::StrCat(seconds);
  const std::pair<absl::string_view, absl::string_view> extra[] = {{"retry-after", retry_after}};
  callbacks_->SendLocalReply(429, "rate_limited", "request rate over this service's limit", extra);
  return http::FilterStatus::kStop;
}

}  // namespace remora::filters
