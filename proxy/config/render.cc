#include "proxy/config/render.h"

#include "proxy/config/decode.h"

namespace remora::config {

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
    listeners.push_back(std::move(j));
  }

  nlohmann::json clusters = nlohmann::json::array();
  for (const Cluster& cl : c.clusters) {
    nlohmann::json endpoints = nlohmann::json::array();
    for (const Endpoint& e : cl.endpoints) {
      endpoints.push_back({{"address", e.address.ToString()}, {"weight", e.weight}});
    }
    nlohmann::json j = nlohmann::json::object();
    j["name"] = cl.name;
    j["connect_timeout"] = DurationToString(cl.connect_timeout);
    j["max_connections"] = cl.max_connections;
    j["endpoints"] = std::move(endpoints);
    clusters.push_back(std::move(j));
  }

  nlohmann::json out = nlohmann::json::object();
  out["admin"] = std::move(admin);
  out["workers"] = c.workers;
  out["drain_timeout"] = DurationToString(c.drain_timeout);
  out["log_level"] = LogLevelName(c.log_level);
  out["listeners"] = std::move(listeners);
  out["clusters"] = std::move(clusters);
  return out;
}

}  // namespace remora::config
