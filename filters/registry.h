#pragma once

// Every HTTP filter remora has, in one explicit table (no static-initialisation registration),
// and the chain each listener direction runs, written once (DESIGN.md 2). The router is not
// listed: it ends every chain.

#include "absl/types/span.h"
#include "proxy/config/config.h"
#include "proxy/http/filter.h"

namespace remora::filters {

// All filters, by name.
absl::Span<const http::FilterFactory* const> AllFilters();

// The decode-order chain of a listener of `direction`, router excluded.
absl::Span<const http::FilterFactory* const> ChainFor(config::Direction direction);

}  // namespace remora::filters
