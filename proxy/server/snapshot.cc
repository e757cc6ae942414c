#include "proxy/server/snapshot.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "filters/registry.h"
#include "proxy/common/file.h"
#include "proxy/network/address.h"

namespace remora::server {

int64_t ClusterRuntime::ActiveRequests() const {
  int64_t n = 0;
  for (size_t i = 0; i < worker_count; ++i) {
    n += per_worker[i].active_requests.load(std::memory_order_relaxed);
  }
  return n;
}

const ClusterRuntime* Snapshot::FindCluster(const std::string& name) const {
  for (const auto& c : clusters) {
    if (c.config->name == name) return &c;
  }
  return nullptr;
}

const ListenerRuntime* Snapshot::FindListener(const std::string& name) const {
  for (const auto& l : listeners) {
    if (l.config->name == name) return &l;
  }
  return nullptr;
}

namespace {

// The files and settings both sides share.
tls::ContextOptions FromConfig(const config::Tls& t, bool server) {
  tls::ContextOptions o;
  o.server = server;
  o.cert_file = t.cert;
  o.key_file = t.key;
  o.ca_file = t.ca;
  return o;
}

// Loads `o` into `*into`, each file read once per config (`files`, by path): every context of
// one load sees the same bytes, even while a rotation writes them. The error names what it is
// for ("listener web (line 7)").
absl::Status Load(const tls::ContextOptions& o, absl::string_view owner, int line,
                  absl::flat_hash_map<std::string, std::string>& files,
                  std::shared_ptr<const tls::Context>* into) {
  auto error = [&](absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(owner, " (line ", line, "): tls: ", message));
  };
  tls::PemFiles pem;
  for (auto [path, text] : {std::pair{&o.cert_file, &pem.cert}, std::pair{&o.key_file, &pem.key},
                            std::pair{&o.ca_file, &pem.ca}}) {
    if (path->empty()) continue;
    auto [it, fresh] = files.try_emplace(*path);
    if (fresh && !ReadFile(*path, &it->second)) {
      files.erase(it);
      return error(absl::StrCat("cannot read ", *path, ": ", std::strerror(errno)));
    }
    *text = it->second;
  }
  absl::StatusOr<std::shared_ptr<const tls::Context>> c = tls::Context::Load(o, pem);
  if (!c.ok()) return error(c.status().message());
  *into = *std::move(c);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TlsContexts> LoadTlsContexts(const config::Config& config) {
  TlsContexts out;
  for (const config::Listener& l : config.listeners) {
    if (!l.tls.enabled) continue;
    tls::ContextOptions o = FromConfig(l.tls, /*server=*/true);
    o.require_peer_certificate = !l.tls.ca.empty();
    // HTTP listeners speak both; the first the client offers in this order wins. An inbound
    // listener also takes the mesh's TCP tunnels.
    if (l.kind == config::ListenerKind::kHttp) o.alpn = {"h2", "http/1.1"};
    if (l.kind == config::ListenerKind::kInbound) o.alpn = {"h2", "http/1.1", tls::kAlpnTunnel};
    if (absl::Status s = Load(o, "listener " + l.name, l.line, out.files, &out.listeners[l.name]);
        !s.ok()) {
      return s;
    }
  }
  for (const config::Cluster& cl : config.clusters) {
    if (!cl.tls.enabled) continue;
    tls::ContextOptions o = FromConfig(cl.tls, /*server=*/false);
    o.sni = cl.tls.sni;
    o.peer.exact = cl.tls.spiffe_id;
    o.peer.trust_domain = cl.tls.trust_domain;
    o.spiffe = !o.peer.empty();  // else a plain TLS server, checked against sni
    if (absl::Status s = Load(o, "cluster " + cl.name, cl.line, out.files, &out.clusters[cl.name]);
        !s.ok()) {
      return s;
    }
  }
  return out;
}

std::shared_ptr<const Snapshot> BuildSnapshot(config::Config config, uint64_t version, int workers,
                                              stats::Store& stats,
                                              upstream::EndpointStateRegistry& endpoints,
                                              const TlsContexts* tls) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = version;
  snap->config = std::move(config);
  // Pointers into snap->config stay valid: the vectors are not touched after this point.
  snap->clusters.reserve(snap->config.clusters.size());
  for (const config::Cluster& c : snap->config.clusters) {
    ClusterRuntime rt;
    rt.config = &c;
    rt.state = endpoints.Cluster(c.name);
    rt.stats = stats::RegisterClusterStats(stats, c.name);
    rt.per_worker = std::make_unique<ClusterRuntime::PerWorker[]>(static_cast<size_t>(workers));
    rt.worker_count = static_cast<size_t>(workers);
    for (int w = 0; w < workers; ++w) {
      rt.per_worker[static_cast<size_t>(w)].active =
          std::make_unique<int32_t[]>(c.endpoints.size());  // zeroed
    }
    rt.lb = upstream::LbTables::Build(c, snap->config.zone);
    if (tls != nullptr && tls->clusters.contains(c.name)) {
      rt.tls = tls->clusters.at(c.name);
      rt.tls_stats = stats::RegisterTlsStats(stats, "cluster", c.name);
      stats.main_writer().Set(rt.tls_stats.cert_expiry,
                              static_cast<uint64_t>(rt.tls->expires_at_unix()));
    }
    // Pools key on endpoint state: connections made under other TLS settings (none, another
    // trust bundle or identity) are never reused. A rotated certificate at the same paths keeps
    // them: existing connections continue, new handshakes use the new pair.
    const std::string tls_variant =
        c.tls.enabled ? absl::StrCat("tls:", c.tls.ca, ",", c.tls.cert, ",", c.tls.key, ",",
                                     c.tls.sni, ",", c.tls.spiffe_id, ",", c.tls.trust_domain)
                      : "";
    for (const config::Endpoint& e : c.endpoints) {
      EndpointRuntime ep;
      socklen_t len;
      // The decoder has validated the address; a failure here would be a decoder bug.
      network::ToSockaddr(e.address, &ep.address, &len);
      ep.address_text = e.address.ToString();
      ep.weight = e.weight;
      ep.state = endpoints.Endpoint(c.name, ep.address_text, tls_variant);
      rt.endpoints.push_back(std::move(ep));
    }
    snap->clusters.push_back(std::move(rt));
  }
  for (const config::Listener& l : snap->config.listeners) {
    ListenerRuntime rt;
    rt.config = &l;
    rt.cluster = snap->FindCluster(l.cluster);
    rt.stats = stats::RegisterListenerStats(stats, l.name);
    if (tls != nullptr) {
      if (auto it = tls->listeners.find(l.name); it != tls->listeners.end()) {
        rt.tls = it->second;
        rt.tls_stats = stats::RegisterTlsStats(stats, "listener", l.name);
        stats.main_writer().Set(rt.tls_stats.cert_expiry,
                                static_cast<uint64_t>(rt.tls->expires_at_unix()));
      }
    }
    for (const config::Listener::TlsRoute& t : l.tls_routes) {
      rt.tls_route_clusters.push_back(snap->FindCluster(t.cluster));
    }
    if (config::IsTransparent(l.kind) && l.passthrough) {
      // The decoder added the cluster if the config did not define it.
      rt.passthrough = snap->FindCluster(l.kind == config::ListenerKind::kInbound
                                             ? config::kInboundPassthroughCluster
                                             : config::kPassthroughCluster);
      auto route = std::make_shared<config::Route>();
      route->name = "passthrough";
      route->cluster = rt.passthrough->config->name;
      route->timeout = absl::ZeroDuration();
      rt.passthrough_route = {route.get(), rt.passthrough, std::nullopt};
      rt.passthrough_route_config = std::move(route);
    }
    if (l.kind == config::ListenerKind::kHttp || config::IsTransparent(l.kind)) {
      rt.routes = http::RouteTable(
          l.routes, [&](const std::string& name) { return snap->FindCluster(name); });
      rt.rate_limits = filters::ListenerRateLimits::Build(l, workers);
      bool authorized = std::any_of(l.routes.begin(), l.routes.end(),
                                    [](const config::Route& r) { return r.has_authorization; });
      rt.filters = filters::ChainFor(rt.rate_limits != nullptr, authorized);
    }
    snap->listeners.push_back(std::move(rt));
  }
  return snap;
}

}  // namespace remora::server
