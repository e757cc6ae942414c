#pragma once

// Trace-context propagation (DESIGN.md 3), the first filter on the seam.
//
// - A valid W3C `traceparent` (version 00: 00-<32 hex>-<16 hex>-<2 hex>, lower case, ids not all
//   zero) passes on untouched with its `tracestate`. The parent id is not rewritten: the proxy
//   exports no span of its own yet, and a parent id naming a span nobody reports would break the
//   trace.
// - An invalid one starts a new trace: a fresh traceparent replaces it and `tracestate` is dropped
//   (W3C Trace Context 3.3.1.3).
// - A missing one is derived from B3 (`b3` single header, or `x-b3-traceid`/`x-b3-spanid`/
//   `x-b3-sampled`) when present, else, if the listener's create_trace_context is on, created
//   with random ids (sampled).
// - `x-request-id` is created (a random UUID v4) when absent.

#include <memory>

#include "proxy/http/filter.h"

namespace remora::filters {

class TraceContextFilter final : public http::StreamFilter {
 public:
  static std::unique_ptr<http::StreamFilter> Create(const server::ListenerRuntime& listener);
  static const http::FilterFactory kFactory;

  explicit TraceContextFilter(bool create_missing) : create_missing_(create_missing) {}
  http::FilterStatus DecodeHeaders(http::RequestHead& head, bool end_stream) override;

 private:
  bool create_missing_;
};

// Exposed for unit tests.
bool IsValidTraceparent(absl::string_view value);
// Builds a version-00 traceparent from B3 headers into out[55]; false when they are absent or
// malformed.
bool TraceparentFromB3(const http::HeaderMap& headers, char out[55]);

}  // namespace remora::filters
