#pragma once

// Authorization by caller identity (docs/tls.md "Authorization"): a route's `authorization`
// rules decide on the caller's SPIFFE ID (from mutual TLS), the method and the normalised path.
// Deny rules first: one matching refuses. Then, if the route has allow rules, one must match. A
// refused request gets 403 with `x-remora-reason: unauthorized_peer` (gRPC PERMISSION_DENIED)
// and never reaches the app. A caller without a verified identity (plaintext, or TLS without a
// client certificate) matches no peer condition.
//
// In the chain only where some route of the listener has rules (filters/registry.h).

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "proxy/config/config.h"
#include "proxy/http/filter.h"

namespace remora::filters {

// Whether `peer` (a SPIFFE ID, empty for none) matches `pattern` (config::AuthzRule::peers).
bool PeerMatches(absl::string_view pattern, absl::string_view peer);
bool RuleMatches(const config::AuthzRule& rule, absl::string_view peer, absl::string_view method,
                 absl::string_view normalized_path);
// True if `authorization` admits the request; else *why says which rule refused it.
// `normalized_target` is the request's normalised path with its query, if any: rules match the
// path alone, as routes do.
bool Authorize(const config::Authorization& authorization, absl::string_view peer,
               absl::string_view method, absl::string_view normalized_target, std::string* why);

class MtlsAuthzFilter final : public http::StreamFilter {
 public:
  static std::unique_ptr<http::StreamFilter> Create(const server::ListenerRuntime& listener);
  static const http::FilterFactory kFactory;

  explicit MtlsAuthzFilter(const server::ListenerRuntime& listener) : listener_(listener) {}
  http::FilterStatus DecodeHeaders(http::RequestHead& head, bool end_stream) override;

 private:
  const server::ListenerRuntime& listener_;
};

}  // namespace remora::filters
