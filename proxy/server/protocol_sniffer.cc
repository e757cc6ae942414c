#include "proxy/server/protocol_sniffer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_join.h"
#include "proxy/common/log.h"
#include "proxy/http/connection_manager.h"
#include "proxy/server/tls_setup.h"
#include "proxy/tcp/tcp_proxy.h"

namespace remora::server {

using event::TcpConnection;

namespace {

// Where a connection without a cluster goes: outbound, its original destination; inbound, the
// app on loopback at the original port (or app_port), from 127.0.0.6 (interception rules exempt
// that source, so the delivery is not intercepted again). None for a direct connection.
std::optional<network::Destination> DestinationFor(const config::Listener& listener,
                                                   const network::OriginalDestination& original) {
  if (original.direct) return std::nullopt;
  network::Destination d{};
  if (listener.kind != config::ListenerKind::kInbound) {
    d.address = original.address;
    return d;
  }
  uint16_t port = listener.app_port != 0 ? listener.app_port : network::PortOf(original.address);
  if (original.address.ss_family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(d.address);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_loopback;
    return d;  // IPv6 has no 127.0.0.6 twin: delivered from ::1
  }
  auto& a = reinterpret_cast<sockaddr_in&>(d.address);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto& src = reinterpret_cast<sockaddr_in&>(d.source);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000006);  // 127.0.0.6
  d.bind_source = true;
  return d;
}

bool TlsRouteMatches(const config::Listener::TlsRoute& route,
                     const network::ClientHelloInfo& hello) {
  if (!route.sni.empty() && (hello.sni.empty() || !network::SniMatches(route.sni, hello.sni))) {
    return false;
  }
  if (route.alpn.empty()) return true;
  for (const std::string& offered : hello.alpn) {
    if (std::find(route.alpn.begin(), route.alpn.end(), offered) != route.alpn.end()) return true;
  }
  return false;
}

// A ClientHello from another sidecar: it offers the mesh's mark.
bool OffersMeshAlpn(const network::ClientHelloInfo& hello) {
  for (const std::string& p : hello.alpn) {
    if (p == tls::kAlpnMesh || p == tls::kAlpnTunnel) return true;
  }
  return false;
}

}  // namespace

void ProtocolSniffer::Start(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                            const ListenerRuntime& listener, std::unique_ptr<TcpConnection> conn,
                            const network::OriginalDestination& destination) {
  auto* s = new ProtocolSniffer(ctx, std::move(snapshot), listener, std::move(conn), destination);
  ctx.connections.Add(s);
  const config::Listener& cfg = *listener.config;
  uint16_t port = network::PortOf(destination.address);
  // Under mutual TLS even a server-first protocol starts with the client's ClientHello.
  if (!s->mesh_tls_ && std::find(cfg.server_first_ports.begin(), cfg.server_first_ports.end(),
                                 port) != cfg.server_first_ports.end()) {
    // The server speaks first: waiting for the client would only add the timeout.
    s->Decide(network::Protocol::kOpaque, listener.stats.detected_server_first);
    return;
  }
  s->conn_->SetCallbacks(s);
  s->timer_ = ctx.dispatcher.CreateTimer([s] { s->OnTimer(); });
  // Strict mode serves nothing but TLS: its ClientHello gets the time a handshake gets (a lost
  // segment is resent after 200 ms or more), not the time a silent client gets.
  s->timer_->Enable(s->strict_ ? std::max(cfg.detect_timeout, cfg.tls.handshake_timeout)
                               : cfg.detect_timeout);
  s->conn_->ReadEnable(true);
}

ProtocolSniffer::ProtocolSniffer(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                                 const ListenerRuntime& listener,
                                 std::unique_ptr<TcpConnection> conn,
                                 const network::OriginalDestination& destination)
    : ctx_(ctx),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      conn_(std::move(conn)),
      destination_(destination),
      started_(ctx.dispatcher.Now()),
      mesh_tls_(listener.tls != nullptr && listener.config->kind == config::ListenerKind::kInbound),
      strict_(mesh_tls_ && listener.config->tls.mode == config::TlsMode::kStrict) {}

void ProtocolSniffer::OnTimer() {
  switch (tls_) {
    case Tls::kTunnel:
      return Decide(network::Protocol::kOpaque, listener_.stats.detected_tcp);
    case Tls::kNone:
      if (strict_) {
        return Refuse(tls::HandshakeFailure::kTimeout,
                      "no ClientHello within detect_timeout (strict mode takes mutual TLS only)");
      }
      break;
    case Tls::kHandshaking:  // the connection's handshake timeout runs instead
      return;
    case Tls::kTerminated:
      break;
  }
  Decide(network::Protocol::kOpaque, listener_.stats.detected_timeout);
}

void ProtocolSniffer::Terminate() {
  tls_ = Tls::kHandshaking;
  timer_->Disable();
  // The bytes read so far (the ClientHello) start the handshake; the plaintext after it comes
  // back here to be told apart as any connection's first bytes are.
  AttachTls(ctx_, *conn_, listener_.tls, listener_.tls_stats, "listener " + listener_.config->name,
            {}, {}, listener_.config->tls.handshake_timeout);
}

void ProtocolSniffer::OnHandshakeDone() {
  // (A failed handshake closes the connection instead: OnEvent.)
  if (done_ || tls_ != Tls::kHandshaking) return;
  const bool tunnel = conn_->transport()->alpn() == tls::kAlpnTunnel;
  started_ = ctx_.dispatcher.Now();  // detection time counts from the first plaintext
  if (tunnel) {
    // The other sidecar says what it carries: relayed as it is, on a later turn (the connection
    // is in the middle of reading).
    tls_ = Tls::kTunnel;
    timer_->Enable(absl::ZeroDuration());
    return;
  }
  tls_ = Tls::kTerminated;
  timer_->Enable(listener_.config->detect_timeout);
}

void ProtocolSniffer::Refuse(tls::HandshakeFailure reason, const char* why) {
  if (done_) return;
  done_ = true;
  CountHandshakeFailure(ctx_, listener_.tls_stats, "listener " + listener_.config->name,
                        conn_->peer(), reason, why);
  conn_->Close(TcpConnection::CloseMode::kNow);
  Finish();
}

void ProtocolSniffer::OnRead(buffer::Buffer& data) {
  if (tls_ == Tls::kHandshaking || tls_ == Tls::kTunnel) return;  // the bytes stay
  saw_bytes_ = true;
  if (awaiting_sni_) return ReadSni(data);
  // Look without taking: the bytes stay for the handler that comes next. A client's first
  // bytes arrive in one or two reads; the detector needs at most the HTTP/2 preface (24).
  char head[32];
  size_t n = 0;
  for (size_t i = 0; i < data.slice_count() && n < sizeof(head); ++i) {
    absl::string_view v = data.slice(i).view().substr(0, sizeof(head) - n);
    std::memcpy(head + n, v.data(), v.size());
    n += v.size();
  }
  network::Protocol p = network::DetectProtocol(absl::string_view(head, n));
  if (p == network::Protocol::kNeedMore) return;
  if (mesh_tls_ && tls_ == Tls::kNone) {
    if (p == network::Protocol::kTls) {
      if (strict_) return Terminate();
      awaiting_sni_ = true;  // permissive: the mesh's TLS is told apart by its ALPN mark
      return ReadSni(data);
    }
    if (strict_) {
      return Refuse(tls::HandshakeFailure::kNotTls,
                    "plaintext (strict mode takes mutual TLS only)");
    }
  }
  switch (p) {
    case network::Protocol::kNeedMore:
      return;
    case network::Protocol::kHttp1:
      return Decide(p, listener_.stats.detected_http1);
    case network::Protocol::kHttp2:
      return Decide(p, listener_.stats.detected_http2);
    case network::Protocol::kTls:
      if (!listener_.config->tls_routes.empty() && tls_ == Tls::kNone) {
        // Routed by the server it names: wait (within detect_timeout) for the whole
        // ClientHello record.
        awaiting_sni_ = true;
        return ReadSni(data);
      }
      return Decide(p, listener_.stats.detected_tls);
    case network::Protocol::kOpaque:
      return Decide(p, listener_.stats.detected_tcp);
  }
}

void ProtocolSniffer::ReadSni(const buffer::Buffer& data) {
  // A ClientHello record is at most 16 KiB + 5. It is copied out once it is all here (its
  // length is in the 5-byte header), not on every read of a client that trickles it.
  constexpr size_t kMaxRecord = 16 * 1024 + 5;
  char header[5];
  size_t have = 0;
  for (size_t i = 0; i < data.slice_count() && have < sizeof(header); ++i) {
    absl::string_view v = data.slice(i).view().substr(0, sizeof(header) - have);
    std::memcpy(header + have, v.data(), v.size());
    have += v.size();
  }
  if (have < sizeof(header)) return;
  size_t record =
      5 + ((static_cast<unsigned char>(header[3]) << 8) | static_cast<unsigned char>(header[4]));
  if (data.length() < std::min(record, kMaxRecord)) return;
  std::string bytes;
  for (size_t i = 0; i < data.slice_count() && bytes.size() < kMaxRecord; ++i) {
    absl::string_view v = data.slice(i).view().substr(0, kMaxRecord - bytes.size());
    bytes.append(v.data(), v.size());
  }
  network::ClientHelloInfo hello;
  network::HelloResult read = network::ReadClientHello(bytes, &hello);
  if (mesh_tls_ && tls_ == Tls::kNone && read == network::HelloResult::kFound &&
      OffersMeshAlpn(hello)) {
    awaiting_sni_ = false;
    return Terminate();
  }
  if (read == network::HelloResult::kFound) {
    const std::vector<config::Listener::TlsRoute>& routes = listener_.config->tls_routes;
    for (size_t i = 0; i < routes.size(); ++i) {
      if (TlsRouteMatches(routes[i], hello)) {
        tls_cluster_ = listener_.tls_route_clusters[i];
        break;
      }
    }
    LOG_DEBUG("listener %s: %s: TLS for \"%s\" (ALPN %s) %s", listener_.config->name, conn_->peer(),
              hello.sni, absl::StrJoin(hello.alpn, ","),
              tls_cluster_ != nullptr ? "matched a tls route" : "matched no tls route");
  }
  Decide(network::Protocol::kTls, listener_.stats.detected_tls);
}

void ProtocolSniffer::OnEndOfStream() {
  if (strict_ && tls_ == Tls::kNone) {
    if (saw_bytes_) return Refuse(tls::HandshakeFailure::kNotTls, "not a ClientHello");
    conn_->Close(TcpConnection::CloseMode::kNow);  // connected and left: a port probe
    done_ = true;
    return Finish();
  }
  // The client said all it will before the bytes decided: relay them as they are.
  Decide(network::Protocol::kOpaque, listener_.stats.detected_tcp);
}

void ProtocolSniffer::OnEvent(TcpConnection::Event) { Finish(); }  // reset: nothing to hand on

void ProtocolSniffer::Decide(network::Protocol protocol, uint32_t outcome) {
  if (done_) return;
  done_ = true;
  if (timer_ != nullptr) timer_->Disable();
  ctx_.stats.Add(outcome);
  ctx_.stats.Add(
      listener_.stats.detection_micros,
      static_cast<uint64_t>(absl::ToInt64Microseconds(ctx_.dispatcher.Now() - started_)));
  conn_->ReadEnable(false);  // the next handler reads when it is ready
  conn_->SetCallbacks(nullptr);
  TcpConnection* raw = conn_.get();
  std::optional<network::Destination> d = DestinationFor(*listener_.config, destination_);
  // HTTP goes through the routes, and what they do not take to the passthrough: so it is traced
  // and counted. A listener whose cluster takes every connection, with no routes, relays it.
  bool http = (protocol == network::Protocol::kHttp1 || protocol == network::Protocol::kHttp2) &&
              (!listener_.config->routes.empty() || listener_.cluster == nullptr);
  if (http) {
    http::HttpConnectionManager::Start(
        ctx_, snapshot_, listener_, std::move(conn_),
        d.has_value() ? std::make_unique<network::Destination>(*d) : nullptr);
    raw->RedeliverBuffered();
  } else {
    const ClusterRuntime* cluster = tls_cluster_;
    if (cluster == nullptr) cluster = listener_.cluster;
    if (cluster == nullptr) cluster = listener_.passthrough;  // may be null: closed
    tcp::TcpProxySession::Start(ctx_, snapshot_, listener_, std::move(conn_),
                                d.has_value() ? &*d : nullptr, cluster);
  }
  Finish();
}

void ProtocolSniffer::CloseNow() {
  if (conn_ != nullptr) conn_->Close(TcpConnection::CloseMode::kNow);
  Finish();
}

void ProtocolSniffer::Finish() {
  if (finished_) return;
  finished_ = true;
  if (timer_ != nullptr) timer_->Disable();
  ctx_.connections.Remove(this);
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

}  // namespace remora::server
