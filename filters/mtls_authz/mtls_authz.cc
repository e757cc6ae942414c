#include "filters/mtls_authz/mtls_authz.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "proxy/common/log.h"
#include "proxy/http/path.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::filters {

bool PeerMatches(absl::string_view pattern, absl::string_view peer) {
  if (peer.empty()) return false;  // no verified identity: no peer condition holds
  if (pattern == "*") return true;
  if (absl::StartsWith(pattern, "ns/")) {
    // "ns/<ns>/*": the path /ns/<ns>/... in any trust domain.
    absl::string_view rest = peer;
    if (!absl::ConsumePrefix(&rest, "spiffe://")) return false;
    size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) return false;
    absl::string_view ns_prefix = pattern.substr(0, pattern.size() - 1);  // "ns/<ns>/"
    return absl::StartsWith(rest.substr(slash + 1), ns_prefix);
  }
  if (absl::EndsWith(pattern, "/*")) {
    return absl::StartsWith(peer, pattern.substr(0, pattern.size() - 1));  // ".../"
  }
  return peer == pattern;
}

bool RuleMatches(const config::AuthzRule& rule, absl::string_view peer, absl::string_view method,
                 absl::string_view path) {
  if (!rule.peers.empty() &&
      std::none_of(rule.peers.begin(), rule.peers.end(),
                   [&](const std::string& p) { return PeerMatches(p, peer); })) {
    return false;
  }
  if (!rule.methods.empty() &&
      std::find(rule.methods.begin(), rule.methods.end(), method) == rule.methods.end()) {
    return false;
  }
  if (!rule.paths.empty() &&
      std::none_of(rule.paths.begin(), rule.paths.end(), [&](const std::string& p) {
        return absl::EndsWith(p, "*")
                   ? absl::StartsWith(path, absl::string_view(p).substr(0, p.size() - 1))
                   : path == p;
      })) {
    return false;
  }
  return true;
}

bool Authorize(const config::Authorization& a, absl::string_view peer, absl::string_view method,
               absl::string_view target, std::string* why) {
  const absl::string_view path = http::PathWithoutQuery(target);
  for (size_t i = 0; i < a.deny.size(); ++i) {
    if (RuleMatches(a.deny[i], peer, method, path)) {
      *why = absl::StrCat("deny rule ", i + 1, " matches");
      return false;
    }
  }
  if (a.allow.empty()) return true;
  for (const config::AuthzRule& rule : a.allow) {
    if (RuleMatches(rule, peer, method, path)) return true;
  }
  *why = "no allow rule matches";
  return false;
}

const http::FilterFactory MtlsAuthzFilter::kFactory{"mtls_authz", &MtlsAuthzFilter::Create};

std::unique_ptr<http::StreamFilter> MtlsAuthzFilter::Create(
    const server::ListenerRuntime& listener) {
  return std::make_unique<MtlsAuthzFilter>(listener);
}

http::FilterStatus MtlsAuthzFilter::DecodeHeaders(http::RequestHead& head, bool) {
  const http::CompiledRoute* route = callbacks_->info().route;
  if (route == nullptr || !route->config->has_authorization) return http::FilterStatus::kContinue;
  absl::string_view peer = callbacks_->info().peer_identity;
  std::string why;
  if (Authorize(route->config->authorization, peer, head.method, head.normalized_path, &why)) {
    return http::FilterStatus::kContinue;
  }
  callbacks_->worker().stats.Add(listener_.stats.unauthorized);
  LOG_DEBUG("listener %s: %s %s from %s refused: %s", listener_.config->name, head.method,
            head.normalized_path, peer.empty() ? "an unauthenticated caller" : peer, why);
  callbacks_->SendLocalReply(
      403, "unauthorized_peer",
      absl::StrCat("the caller (", peer.empty() ? "no verified identity" : peer,
                   ") may not call this route: ", why));
  return http::FilterStatus::kStop;
}

}  // namespace remora::filters
