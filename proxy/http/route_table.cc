#include "proxy/http/route_table.h"

#include "absl/strings/match.h"
#include "proxy/http/path.h"

namespace remora::http {
namespace {

absl::string_view StripPort(absl::string_view authority) {
  if (!authority.empty() && authority[0] == '[') {  // [v6]:port
    size_t close = authority.find(']');
    return close == absl::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  size_t colon = authority.rfind(':');
  return colon == absl::string_view::npos ? authority : authority.substr(0, colon);
}

bool HasPort(absl::string_view authority) {
  size_t close = authority.rfind(']');
  size_t colon = authority.rfind(':');
  return colon != absl::string_view::npos && (close == absl::string_view::npos || colon > close);
}

}  // namespace

bool AuthorityMatches(absl::string_view authority, absl::string_view host) {
  if (HasPort(host)) return IEquals(authority, host);
  return IEquals(StripPort(authority), host);
}

const CompiledRoute* RouteTable::Match(const RequestHead& request) const {
  absl::string_view path = PathWithoutQuery(request.normalized_path);
  for (const CompiledRoute& r : routes_) {
    const config::RouteMatch& m = r.config->match;
    if (!m.authority.empty() && !AuthorityMatches(request.authority, m.authority)) continue;
    if (!m.method.empty() && request.method != m.method) continue;
    if (!m.prefix.empty() && !absl::StartsWith(path, m.prefix)) continue;
    if (!m.path.empty() && path != m.path) continue;
    // std::regex matches recursively, a frame per character: a bounded path keeps a hostile one
    // from exhausting the stack. A longer path never matches a regex route.
    if (r.regex && (path.size() > kMaxRegexPathBytes ||
                    !std::regex_match(path.begin(), path.end(), *r.regex))) {
      continue;
    }
    bool headers_ok = true;
    for (const config::HeaderMatch& h : m.headers) {
      int i = request.headers.Find(h.name);
      if (i < 0 || (h.has_value && request.headers.value(static_cast<size_t>(i)) != h.value)) {
        headers_ok = false;
        break;
      }
    }
    if (headers_ok) return &r;
  }
  return nullptr;
}

}  // namespace remora::http
