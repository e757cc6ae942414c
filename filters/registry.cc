#include "filters/registry.h"

#include "filters/rate_limit/rate_limit.h"
#include "filters/trace_context/trace_context.h"

namespace remora::filters {
namespace {

// Later issues add mtls_authz, access_log and stats here (DESIGN.md 2). Rate limiting comes
// first: a refused request costs nothing further.
constexpr const http::FilterFactory* kInbound[] = {&TraceContextFilter::kFactory};
constexpr const http::FilterFactory* kOutbound[] = {&TraceContextFilter::kFactory};
constexpr const http::FilterFactory* kInboundLimited[] = {&RateLimitFilter::kFactory,
                                                          &TraceContextFilter::kFactory};
constexpr const http::FilterFactory* kOutboundLimited[] = {&RateLimitFilter::kFactory,
                                                           &TraceContextFilter::kFactory};

}  // namespace

absl::Span<const http::FilterFactory* const> ChainFor(config::Direction direction,
                                                      bool rate_limited) {
  if (direction == config::Direction::kInbound) {
    return rate_limited ? absl::MakeConstSpan(kInboundLimited) : absl::MakeConstSpan(kInbound);
  }
  return rate_limited ? absl::MakeConstSpan(kOutboundLimited) : absl::MakeConstSpan(kOutbound);
}

}  // namespace remora::filters
