#pragma once

// A listener's routes, compiled once per snapshot: cluster references resolved, regexes built.
// Match() picks the first route whose every condition holds (config.h RouteMatch).

#include <optional>
#include <regex>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/http/message.h"

namespace remora::server {
struct ClusterRuntime;
}

namespace remora::http {

struct CompiledRoute {
  const config::Route* config;
  const server::ClusterRuntime* cluster;
  std::optional<std::regex> regex;
};

class RouteTable {
 public:
  // Paths longer than this never match a `regex` route (see Match).
  static constexpr size_t kMaxRegexPathBytes = 2048;

  RouteTable() = default;
  // `find_cluster` resolves a name (the decoder has checked that it exists).
  template <typename FindCluster>
  RouteTable(const std::vector<config::Route>& routes, FindCluster find_cluster) {
    routes_.reserve(routes.size());
    for (const config::Route& r : routes) {
      CompiledRoute c{&r, find_cluster(r.cluster), std::nullopt};
      if (!r.match.regex.empty()) c.regex.emplace(r.match.regex, std::regex::ECMAScript);
      routes_.push_back(std::move(c));
    }
  }

  // The route for `request` (matched on its authority, normalized_path, method and headers), or
  // null.
  const CompiledRoute* Match(const RequestHead& request) const;

 private:
  std::vector<CompiledRoute> routes_;
};

// Whether `authority` (a Host value, maybe with a port) names `host` (from a route; when it has
// no port, any port matches). Case-insensitive.
bool AuthorityMatches(absl::string_view authority, absl::string_view host);

}  // namespace remora::http
