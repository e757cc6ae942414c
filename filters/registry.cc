#include "filters/registry.h"

#include "filters/trace_context/trace_context.h"

namespace remora::filters {
namespace {

// Later issues add mtls_authz, rate_limit, timeout, access_log and stats here (DESIGN.md 2).
constexpr const http::FilterFactory* kInbound[] = {&TraceContextFilter::kFactory};
constexpr const http::FilterFactory* kOutbound[] = {&TraceContextFilter::kFactory};

}  // namespace

absl::Span<const http::FilterFactory* const> ChainFor(config::Direction direction) {
  if (direction == config::Direction::kInbound) return kInbound;
  return kOutbound;
}

}  // namespace remora::filters
