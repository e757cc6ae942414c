#include "proxy/tcp/tcp_proxy.h"

#include "absl/time/time.h"
#include "proxy/common/log.h"
#include "proxy/network/address.h"
#include "proxy/server/tls_setup.h"
#include "proxy/upstream/counted_connection.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier.h"

namespace remora::tcp {

using event::TcpConnection;

void TcpProxySession::Start(server::WorkerContext& ctx,
                            std::shared_ptr<const server::Snapshot> snapshot,
                            const server::ListenerRuntime& listener,
                            std::unique_ptr<TcpConnection> downstream,
                            const network::Destination* destination,
                            const server::ClusterRuntime* cluster) {
  auto* s = new TcpProxySession(ctx, std::move(snapshot), listener);
  if (cluster != nullptr) s->cluster_ = cluster;
  if (destination != nullptr) s->destination_ = *destination;
  ctx.connections.Add(s);
  ctx.stats.Add(listener.stats.cx_total);
  ctx.stats.AddSigned(listener.stats.cx_active, 1);
  s->accepted_at_ = ctx.dispatcher.Now();
  s->down_.conn = std::move(downstream);
  s->down_.conn->SetCallbacks(&s->down_);
  uint32_t limit = listener.config->buffer_limit_bytes;
  s->down_.conn->SetWriteWatermarks(limit / 2, limit);
  if (event::Transport* t = s->down_.conn->transport(); t != nullptr && !t->ready()) {
    // A TLS client: the upstream is connected once it has proved who it is (a client that
    // never completes its handshake costs no upstream connection).
    s->awaiting_handshake_ = true;
    return;
  }
  s->Connect();
}

TcpProxySession::TcpProxySession(server::WorkerContext& ctx,
                                 std::shared_ptr<const server::Snapshot> snapshot,
                                 const server::ListenerRuntime& listener)
    : ctx_(ctx), snapshot_(std::move(snapshot)), listener_(listener), cluster_(listener.cluster) {
  down_.session = up_.session = this;
  down_.other = &up_;
  up_.other = &down_;
  down_.is_upstream = false;
  up_.is_upstream = true;
}

TcpProxySession::~TcpProxySession() = default;

void TcpProxySession::ConnectDirect() {
  if (cluster_ == nullptr || !destination_.has_value()) {
    // Reached straight (no original destination but our own: forwarding would connect to
    // ourselves), or nothing takes it (no cluster, passthrough off).
    LOG_DEBUG("listener %s: %s %s; closing", listener_.config->name, down_.conn->peer(),
              destination_.has_value()
                  ? "matched no cluster and the listener's passthrough is off"
                  : "connected straight to the listener, which has no cluster for it");
    down_.failed = true;
    Finish();
    return;
  }
  if (!upstream::ReserveConnectionSlot(*cluster_)) {
    ctx_.stats.Add(cluster_->stats.overflow);
    ctx_.stats.Add(listener_.stats.overflow);
    LOG_DEBUG("listener %s: cluster %s at max_connections (%d); closing %s", listener_.config->name,
              cluster_->config->name, cluster_->config->max_connections, down_.conn->peer());
    down_.failed = true;
    Finish();
    return;
  }
  holds_cluster_slot_ = true;
  ctx_.stats.AddSigned(cluster_->stats.cx_active, 1);
  const network::Destination& d = *destination_;
  up_.conn = TcpConnection::Connect(
      ctx_.dispatcher, reinterpret_cast<const sockaddr*>(&d.address),
      cluster_->config->connect_timeout,
      d.bind_source ? reinterpret_cast<const sockaddr*>(&d.source) : nullptr);
  up_.conn->SetCallbacks(&up_);
  uint32_t limit = listener_.config->buffer_limit_bytes;
  up_.conn->SetWriteWatermarks(limit / 2, limit);
  up_.conn->ReadEnable(true);  // applied once connected
}

void TcpProxySession::Connect() {
  if (cluster_ == nullptr || cluster_->config->type == config::ClusterType::kOriginalDst) {
    return ConnectDirect();
  }
  const auto& cfg = *cluster_->config;
  upstream::LbRequest lb;
  if (cluster_->config->lb_policy == config::LbPolicy::kRingHash) {
    // A TCP connection has no header to hash: the client address is the key.
    lb.hash = upstream::HashKey(network::PeerHost(down_.conn->peer()));
    lb.has_hash = true;
  }
  upstream::LbPick pick =
      upstream::PickEndpoint(*cluster_, ctx_.index, lb, ctx_.dispatcher.Now(), ctx_.stats);
  if (pick.circuit_open || pick.none_available) {
    if (pick.circuit_open) ctx_.stats.Add(cluster_->stats.circuit_open);
    LOG_DEBUG("listener %s: every endpoint of cluster %s is %s; closing %s", listener_.config->name,
              cfg.name, pick.circuit_open ? "failing (breaker open)" : "out of rotation",
              down_.conn->peer());
    down_.failed = true;
    Finish();
    return;
  }
  endpoint_index_ = pick.endpoint;
  endpoint_ = &cluster_->endpoints[endpoint_index_];
  if (!upstream::ReserveConnectionSlot(*cluster_)) {
    if (pick.probe) endpoint_->state->breaker.ReleaseProbe();
    ctx_.stats.Add(cluster_->stats.overflow);
    ctx_.stats.Add(listener_.stats.overflow);
    LOG_DEBUG("listener %s: cluster %s at max_connections (%d); closing %s", listener_.config->name,
              cfg.name, cfg.max_connections, down_.conn->peer());
    down_.failed = true;
    Finish();
    return;
  }
  holds_cluster_slot_ = true;
  probe_ = pick.probe;
  outcome_pending_ = true;
  ctx_.stats.AddSigned(cluster_->stats.cx_active, 1);
  cluster_->AddEndpointActive(ctx_.index, endpoint_index_, 1);  // least_request: connections
  endpoint_->state->active_connections.fetch_add(1, std::memory_order_relaxed);
  up_.conn = TcpConnection::Connect(
      ctx_.dispatcher, reinterpret_cast<const sockaddr*>(&endpoint_->address), cfg.connect_timeout);
  if (cluster_->tls != nullptr) {
    server::AttachTls(ctx_, *up_.conn, cluster_->tls, cluster_->tls_stats, "cluster " + cfg.name,
                      {}, endpoint_->address_text);
  }
  up_.conn->SetCallbacks(&up_);
  uint32_t limit = listener_.config->buffer_limit_bytes;
  up_.conn->SetWriteWatermarks(limit / 2, limit);
  // The client is read only once the upstream is connected: until then its bytes wait in the
  // kernel, so a connect that fails locally and is retried loses none of them.
  up_.conn->ReadEnable(true);  // applied once connected
}

void TcpProxySession::Side::OnRead(buffer::Buffer& data) {
  auto& s = *session;
  // The client's bytes wait in its read buffer until the upstream is connected (plaintext
  // decrypted with a TLS client's last handshake message comes before that): delivered again
  // then, and never written into a connect that a local retry would throw away.
  if (!is_upstream && !other->connected && !other->failed) return;
  if (is_upstream) {
    if (s.cluster_ != nullptr) s.ctx_.stats.Add(s.cluster_->stats.rx_bytes, data.length());
    s.ctx_.stats.Add(s.listener_.stats.tx_bytes, data.length());
  } else {
    s.ctx_.stats.Add(s.listener_.stats.rx_bytes, data.length());
    if (s.cluster_ != nullptr) s.ctx_.stats.Add(s.cluster_->stats.tx_bytes, data.length());
  }
  if (other->failed) {
    data.Clear();
    return;
  }
  other->conn->Write(data);
}

void TcpProxySession::Side::OnHandshakeDone() {
  auto& s = *session;
  if (is_upstream || !s.awaiting_handshake_) return;
  s.awaiting_handshake_ = false;
  s.accepted_at_ = s.ctx_.dispatcher.Now();  // a local retry's window starts with the connect
  s.Connect();
}

void TcpProxySession::Side::OnEndOfStream() {
  eof = true;
  if (!other->failed && other->conn != nullptr) other->conn->Shutdown();
  session->MaybeFinish();
}

void TcpProxySession::Side::OnEvent(TcpConnection::Event event) {
  auto& s = *session;
  switch (event) {
    case TcpConnection::Event::kConnected:
      connected = true;
      if (s.cluster_ != nullptr) {
        s.RecordConnectOutcome(0);
        s.ctx_.stats.Add(s.cluster_->stats.cx_total);
        if (s.endpoint_ != nullptr) {
          s.endpoint_->state->total_connections.fetch_add(1, std::memory_order_relaxed);
        }
      }
      s.down_.conn->ReadEnable(true);
      // Bytes a protocol sniffer read before handing the client over (none otherwise).
      s.down_.conn->RedeliverBuffered();  // may end the session
      return;
    case TcpConnection::Event::kConnectLocalError:
      // Out of descriptors or ports here: counted, never held against the endpoint. The client
      // is already accepted; rather than drop it, try again shortly (other connections closing
      // free descriptors) until its connect timeout would have passed.
      s.ctx_.stats.Add(s.cluster_->stats.connect_local);
      s.ctx_.local_resource_pressure();
      LOG_DEBUG("listener %s: cannot open a connection to %s (local resources)",
                s.listener_.config->name, s.up_.conn->peer());
      if (s.ctx_.dispatcher.Now() + kLocalRetryDelay - s.accepted_at_ <
          s.cluster_->config->connect_timeout) {
        s.ScheduleLocalRetry();
        return;
      }
      failed = true;
      s.Finish();
      return;
    case TcpConnection::Event::kConnectFailed:
    case TcpConnection::Event::kConnectTimeout:
      if (s.cluster_ != nullptr) {
        s.ctx_.stats.Add(event == TcpConnection::Event::kConnectTimeout
                             ? s.cluster_->stats.connect_timeout
                             : s.cluster_->stats.connect_refused);
        if (s.endpoint_ != nullptr) {
          s.endpoint_->state->connect_failures.fetch_add(1, std::memory_order_relaxed);
        }
        s.RecordConnectOutcome(upstream::FailureClass(upstream::AttemptEnd::kConnectFailure, 0) |
                               (event == TcpConnection::Event::kConnectTimeout
                                    ? upstream::FailureClass(upstream::AttemptEnd::kTimeout, 0)
                                    : 0));
      }
      LOG_DEBUG(
          "listener %s: upstream %s %s", s.listener_.config->name, s.up_.conn->peer(),
          event == TcpConnection::Event::kConnectTimeout ? "connect timeout" : "connect failed");
      failed = true;
      // Nothing reached the client yet: close it without data.
      s.Finish();
      return;
    case TcpConnection::Event::kRemoteReset:
      failed = true;
      if (other->conn != nullptr && !other->failed) {
        // The survivor may still have bytes queued for its peer. Keep reading it (the bytes are
        // dropped): a peer blocked writing to us would otherwise never read what we queue for it,
        // and the flush would never end. The flush is bounded all the same.
        if (!other->eof) other->conn->ReadEnable(true);
        s.ArmFlushTimer();
      }
      s.MaybeFinish();
      return;
  }
}

void TcpProxySession::Side::OnWriteHighWatermark() {
  // This side cannot take more: stop reading the side that feeds it.
  if (other->conn != nullptr && !other->failed) other->conn->ReadEnable(false);
}

void TcpProxySession::Side::OnWriteLowWatermark() {
  if (other->conn != nullptr && !other->failed && !other->eof) other->conn->ReadEnable(true);
}

void TcpProxySession::Side::OnFlushed() { session->MaybeFinish(); }

void TcpProxySession::MaybeFinish() {
  auto flushed = [](const Side& side) {
    return side.failed || side.conn == nullptr || side.conn->write_backlog() == 0;
  };
  bool done = (down_.failed || up_.failed) ? true : (down_.eof && up_.eof);
  if (done && flushed(down_) && flushed(up_)) Finish();
}

void TcpProxySession::ArmFlushTimer() {
  if (flush_timer_ != nullptr) return;
  flush_timer_ = ctx_.dispatcher.CreateTimer([this] {
    LOG_DEBUG("listener %s: %s did not take its last bytes within %s; closing",
              listener_.config->name, down_.failed ? "upstream" : "client",
              absl::FormatDuration(kFailureFlushTimeout));
    Finish();
  });
  flush_timer_->Enable(kFailureFlushTimeout);
}

void TcpProxySession::ScheduleLocalRetry() {
  // The failed connection is closed; give back what Connect() took so it can take it again.
  ReleaseUpstreamSlot();
  if (retry_timer_ == nullptr) {
    retry_timer_ = ctx_.dispatcher.CreateTimer([this] {
      up_.conn.reset();
      Connect();
    });
  }
  retry_timer_->Enable(kLocalRetryDelay);
}

void TcpProxySession::RecordConnectOutcome(uint32_t failure_class) {
  if (!outcome_pending_) return;
  outcome_pending_ = false;
  upstream::RecordOutcome(*cluster_, endpoint_index_, failure_class, probe_, ctx_.dispatcher.Now(),
                          ctx_.stats);
  probe_ = false;
}

void TcpProxySession::ReleaseUpstreamSlot() {
  if (outcome_pending_) {  // never connected nor refused (a local error, or the client left)
    outcome_pending_ = false;
    if (probe_) endpoint_->state->breaker.ReleaseProbe();
    probe_ = false;
  }
  if (!holds_cluster_slot_) return;
  holds_cluster_slot_ = false;
  cluster_->state->active_connections.fetch_sub(1, std::memory_order_relaxed);
  ctx_.stats.AddSigned(cluster_->stats.cx_active, -1);
  if (endpoint_ == nullptr) return;  // an original destination
  endpoint_->state->active_connections.fetch_sub(1, std::memory_order_relaxed);
  cluster_->AddEndpointActive(ctx_.index, endpoint_index_, -1);
}

void TcpProxySession::CloseNow() { Finish(); }

void TcpProxySession::Finish() {
  if (finished_) return;
  finished_ = true;
  if (flush_timer_ != nullptr) flush_timer_->Disable();
  if (retry_timer_ != nullptr) retry_timer_->Disable();
  if (down_.conn != nullptr) down_.conn->Close(TcpConnection::CloseMode::kNow);
  if (up_.conn != nullptr) up_.conn->Close(TcpConnection::CloseMode::kNow);
  ctx_.stats.AddSigned(listener_.stats.cx_active, -1);
  ReleaseUpstreamSlot();
  ctx_.connections.Remove(this);
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

}  // namespace remora::tcp
