#include "filters/registry.h"

#include "filters/mtls_authz/mtls_authz.h"
#include "filters/rate_limit/rate_limit.h"
#include "filters/trace_context/trace_context.h"

namespace remora::filters {
namespace {

// Later issues add access_log and stats here (DESIGN.md 2). Authorization comes first, then rate
// limiting: a refused request costs nothing further. Both directions run the same filters.
const http::FilterFactory* const kAuthz = &MtlsAuthzFilter::kFactory;
const http::FilterFactory* const kLimit = &RateLimitFilter::kFactory;
const http::FilterFactory* const kTrace = &TraceContextFilter::kFactory;
const http::FilterFactory* const kPlain[] = {kTrace};
const http::FilterFactory* const kLimited[] = {kLimit, kTrace};
const http::FilterFactory* const kAuthorized[] = {kAuthz, kTrace};
const http::FilterFactory* const kBoth[] = {kAuthz, kLimit, kTrace};

}  // namespace

absl::Span<const http::FilterFactory* const> ChainFor(bool rate_limited, bool authorized) {
  if (authorized) {
    return rate_limited ? absl::MakeConstSpan(kBoth) : absl::MakeConstSpan(kAuthorized);
  }
  return rate_limited ? absl::MakeConstSpan(kLimited) : absl::MakeConstSpan(kPlain);
}

}  // namespace remora::filters
