#pragma once

// The HTTP filter chain a listener runs, written once as explicit tables of filter factories (no
// static-initialisation registration; DESIGN.md 2). The router is not listed: it ends every
// chain.

#include "absl/types/span.h"
#include "proxy/http/filter.h"

namespace remora::filters {

// The decode-order chain of a listener, router excluded; mtls_authz only where a route has
// authorization rules, rate_limit only where the listener or a route has a limit (no cost
// elsewhere). A request refused by its caller's identity takes no rate-limit token.
absl::Span<const http::FilterFactory* const> ChainFor(bool rate_limited, bool authorized);

}  // namespace remora::filters
