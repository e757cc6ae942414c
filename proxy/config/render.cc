#include "proxy/config/render.h"

#include "proxy/config/decode.h"

namespace remora::config {
namespace {

nlohmann::json HeaderValuesToJson(const std::vector<HeaderValue>& hv) {
  nlohmann::json out = nlohmann::json::array();
  for (const HeaderValue& h : hv) out.push_back({{"name", h.name}, {"value", h.value}});
  return out;
}

nlohmann::json RateLimitToJson(const RateLimit& r) {
  nlohmann::json j = {
      {"requests_per_second", r.requests_per_second}, {"burst", r.burst}, {"max_keys", r.max_keys}};
  if (!r.key_header.empty()) j["key"] = {{"header", r.key_header}};
  if (r.key_client_address) j["key"] = {{"client_address", true}};
  return j;
}

nlohmann::json RouteToJson(const Route& r) {
  nlohmann::json match = nlohmann::json::object();
  const RouteMatch& m = r.match;
  if (!m.authority.empty()) match["authority"] = m.authority;
  if (!m.prefix.empty()) match["prefix"] = m.prefix;
  if (!m.path.empty()) match["path"] = m.path;
  if (!m.regex.empty()) match["regex"] = m.regex;
  if (!m.method.empty()) match["method"] = m.method;
  if (!m.headers.empty()) {
    nlohmann::json headers = nlohmann::json::array();
    for (const HeaderMatch& h : m.headers) {
      nlohmann::json hj = {{"name", h.name}};
      if (h.has_value) hj["value"] = h.value;
      headers.push_back(std::move(hj));
    }
    match["headers"] = std::move(headers);
  }
  nlohmann::json j = nlohmann::json::object();
  if (!r.name.empty()) j["name"] = r.name;
  j["match"] = std::move(match);
  j["cluster"] = r.cluster;
  j["timeout"] = DurationToString(r.timeout);
  if (!r.request_headers_to_add.empty()) {
    j["request_headers_to_add"] = HeaderValuesToJson(r.request_headers_to_add);
  }
  if (!r.request_headers_to_remove.empty())
    j["request_headers_to_remove"] = r.request_headers_to_remove;
  if (!r.response_headers_to_add.empty()) {
    j["response_headers_to_add"] = HeaderValuesToJson(r.response_headers_to_add);
  }
  if (!r.response_headers_to_remove.empty()) {
    j["response_headers_to_remove"] = r.response_headers_to_remove;
  }
  j["idempotent"] = r.idempotent;
  if (r.has_retries) {
    const RetryPolicy& p = r.retries;
    // Status codes go back as numbers, the way the YAML takes them.
    nlohmann::json on = nlohmann::json::array();
    for (const std::string& name : RetryOnNames(p)) on.push_back(name);
    for (uint16_t code : p.status_codes) on.push_back(code);
    j["retries"] = {
        {"attempts", p.attempts},
        {"retry_on", std::move(on)},
        {"per_try_timeout", DurationToString(p.per_try_timeout)},
        {"backoff",
         {{"base", DurationToString(p.backoff_base)}, {"max", DurationToString(p.backoff_max)}}},
        {"buffer_limit_bytes", p.buffer_limit_bytes},
    };
  }
  if (r.has_rate_limit) j["rate_limit"] = RateLimitToJson(r.rate_limit);
  if (r.has_authorization) {
    auto rules = [](const std::vector<AuthzRule>& list) {
      nlohmann::json out = nlohmann::json::array();
      for (const AuthzRule& rule : list) {
        nlohmann::json one = nlohmann::json::object();
        if (!rule.peers.empty()) one["peers"] = rule.peers;
        if (!rule.methods.empty()) one["methods"] = rule.methods;
        if (!rule.paths.empty()) one["paths"] = rule.paths;
        out.push_back(std::move(one));
      }
      return out;
    };
    nlohmann::json a = nlohmann::json::object();
    if (!r.authorization.allow.empty()) a["allow"] = rules(r.authorization.allow);
    if (!r.authorization.deny.empty()) a["deny"] = rules(r.authorization.deny);
    j["authorization"] = std::move(a);
  }
  if (r.has_fallback) {
    nlohmann::json f = {{"status", r.fallback.status}, {"body", r.fallback.body}};
    if (!r.fallback.headers.empty()) f["headers"] = HeaderValuesToJson(r.fallback.headers);
    j["fallback"] = std::move(f);
  }
  return j;
}

// `inbound`: an inbound (transparent) listener's, which has a mode.
nlohmann::json TlsToJson(const Tls& t, bool listener, bool inbound = false) {
  nlohmann::json j = nlohmann::json::object();
  if (!t.cert.empty()) j["cert"] = t.cert;
  if (!t.key.empty()) j["key"] = t.key;
  if (!t.ca.empty()) j["ca"] = t.ca;
  if (listener) {
    j["handshake_timeout"] = DurationToString(t.handshake_timeout);
    j["forward_client_cert"] = t.forward_client_cert;
    if (inbound) j["mode"] = TlsModeName(t.mode);
    return j;
  }
  if (!t.sni.empty()) j["sni"] = t.sni;
  if (!t.spiffe_id.empty()) j["spiffe_id"] = t.spiffe_id;
  if (!t.trust_domain.empty()) j["trust_domain"] = t.trust_domain;
  return j;
}

}  // namespace

nlohmann::json ConfigToJson(const Config& c, bool redact_secrets) {
  nlohmann::json admin = nlohmann::json::object();
  admin["address"] = c.admin.address.ToString();
  if (!c.admin.token.empty()) {
    admin["token"] = redact_secrets ? std::string("<redacted>") : c.admin.token;
  }
  if (!c.admin.unix_socket.empty()) admin["unix_socket"] = c.admin.unix_socket;

  nlohmann::json listeners = nlohmann::json::array();
  for (const Listener& l : c.listeners) {
    nlohmann::json j = nlohmann::json::object();
    j["name"] = l.name;
    j["address"] = l.address.ToString();
    j["kind"] = ListenerKindName(l.kind);
    if (!l.cluster.empty()) j["cluster"] = l.cluster;
    j["buffer_limit_bytes"] = l.buffer_limit_bytes;
    if (l.tls.enabled) {
      j["tls"] = TlsToJson(l.tls, /*listener=*/true, l.kind == ListenerKind::kInbound);
    }
    if (l.kind == ListenerKind::kHttp || IsTransparent(l.kind)) {
      if (l.kind == ListenerKind::kHttp) j["direction"] = DirectionName(l.direction);
      if (IsTransparent(l.kind)) {
        j["detect_timeout"] = DurationToString(l.detect_timeout);
        j["server_first_ports"] = l.server_first_ports;
        nlohmann::json tls = nlohmann::json::array();
        for (const Listener::TlsRoute& t : l.tls_routes) {
          nlohmann::json route = {{"cluster", t.cluster}};
          if (!t.sni.empty()) route["sni"] = t.sni;
          if (!t.alpn.empty()) route["alpn"] = t.alpn;
          tls.push_back(std::move(route));
        }
        if (!tls.empty()) j["tls_routes"] = std::move(tls);
        if (l.app_port != 0) j["app_port"] = l.app_port;
        j["passthrough"] = l.passthrough;
      }
      j["request_header_timeout"] = DurationToString(l.request_header_timeout);
      j["idle_timeout"] = DurationToString(l.idle_timeout);
      j["max_request_header_bytes"] = l.max_request_header_bytes;
      j["max_request_headers"] = l.max_request_headers;
      j["create_trace_context"] = l.create_trace_context;
      j["forward_normalized_path"] = l.forward_normalized_path;
      j["stream_idle_timeout"] = DurationToString(l.stream_idle_timeout);
      j["http2_max_concurrent_streams"] = l.http2_max_concurrent_streams;
      j["http2_reset_burst"] = l.http2_reset_burst;
      j["http2_reset_rate"] = l.http2_reset_rate;
      if (l.has_rate_limit) j["rate_limit"] = RateLimitToJson(l.rate_limit);
      nlohmann::json routes = nlohmann::json::array();
      for (const Route& r : l.routes) routes.push_back(RouteToJson(r));
      // Optional on transparent listeners, and never an empty list (the decoder refuses one).
      if (!routes.empty() || l.kind == ListenerKind::kHttp) j["routes"] = std::move(routes);
    }
    listeners.push_back(std::move(j));
  }

  nlohmann::json clusters = nlohmann::json::array();
  for (const Cluster& cl : c.clusters) {
    nlohmann::json endpoints = nlohmann::json::array();
    for (const Endpoint& e : cl.endpoints) {
      endpoints.push_back({{"address", e.address.ToString()}, {"weight", e.weight}});
      if (!e.zone.empty()) endpoints.back()["zone"] = e.zone;
    }
    nlohmann::json j = nlohmann::json::object();
    j["name"] = cl.name;
    j["type"] = ClusterTypeName(cl.type);
    j["protocol"] = UpstreamProtocolName(cl.protocol);
    j["connect_timeout"] = DurationToString(cl.connect_timeout);
    j["max_connections"] = cl.max_connections;
    j["max_requests"] = cl.max_requests;
    j["max_pending_requests"] = cl.max_pending_requests;
    j["max_retries"] = cl.max_retries;
    j["max_idle_connections"] = cl.max_idle_connections;
    j["idle_connection_timeout"] = DurationToString(cl.idle_connection_timeout);
    j["retry_budget"] = {{"ratio", cl.retry_budget_ratio},
                         {"min_concurrency", cl.retry_budget_min_concurrency}};
    if (cl.tls.enabled) j["tls"] = TlsToJson(cl.tls, /*listener=*/false);
    if (cl.type == ClusterType::kOriginalDst) {  // no endpoints to pick among or watch
      clusters.push_back(std::move(j));
      continue;
    }
    j["lb_policy"] = LbPolicyName(cl.lb_policy);
    if (cl.lb_policy == LbPolicy::kRingHash) {
      j["hash_on"] = cl.hash_header.empty() ? nlohmann::json{{"client_address", true}}
                                            : nlohmann::json{{"header", cl.hash_header}};
    }
    if (cl.circuit_breaker.enabled) {
      const CircuitBreaker& b = cl.circuit_breaker;
      j["circuit_breaker"] = {
          {"consecutive_failures", b.consecutive_failures},
          {"failure_ratio", b.failure_ratio},
          {"window", DurationToString(b.window)},
          {"min_requests", b.min_requests},
          {"failure_on", BreakerFailureNames(b.failure_on)},
          {"open_for", DurationToString(b.open_for)},
          {"max_open_for", DurationToString(b.max_open_for)},
          {"half_open_requests", b.half_open_requests},
          {"max_ejection_percent", b.max_ejection_percent},
      };
    }
    if (cl.health_check.enabled) {
      const HealthCheck& h = cl.health_check;
      j["health_check"] = {
          {"path", h.path},
          {"interval", DurationToString(h.interval)},
          {"timeout", DurationToString(h.timeout)},
          {"healthy_threshold", h.healthy_threshold},
          {"unhealthy_threshold", h.unhealthy_threshold},
      };
      if (!h.host.empty()) j["health_check"]["host"] = h.host;
    }
    j["panic_threshold_percent"] = cl.panic_threshold_percent;
    j["endpoints"] = std::move(endpoints);
    clusters.push_back(std::move(j));
  }

  nlohmann::json out = nlohmann::json::object();
  out["admin"] = std::move(admin);
  out["workers"] = c.workers;
  if (!c.zone.empty()) out["zone"] = c.zone;
  out["drain_timeout"] = DurationToString(c.drain_timeout);
  out["log_level"] = LogLevelName(c.log_level);
  out["listeners"] = std::move(listeners);
  out["clusters"] = std::move(clusters);
  return out;
}

}  // namespace remora::config
