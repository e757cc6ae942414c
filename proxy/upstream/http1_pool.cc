#include "proxy/upstream/http1_pool.h"

#include <algorithm>

#include "proxy/common/log.h"
#include "proxy/upstream/counted_connection.h"

namespace remora::upstream {

using event::TcpConnection;

Http1Connection::Http1Connection(Http1Pool& pool, EndpointPool& ep,
                                 const server::ClusterRuntime& cluster)
    : pool_(pool),
      endpoint_pool_(ep),
      stats_(cluster.stats),
      cluster_state_(cluster.state),
      codec_(http::HeaderLimits{}, out_) {}

Http1Connection::~Http1Connection() = default;

void Http1Connection::Flush() {
  if (out_.empty() || closed_) return;
  conn_->Write(out_);
}

void Http1Connection::OnRead(buffer::Buffer& data) {
  if (owner_ == nullptr) return OnIdleEvent();
  owner_->OnUpstreamData(data);
}

void Http1Connection::OnEndOfStream() {
  if (owner_ == nullptr) return OnIdleEvent();
  owner_->OnUpstreamEndOfStream();
}

void Http1Connection::OnEvent(TcpConnection::Event event) {
  if (event == TcpConnection::Event::kConnected) {
    connected_ = true;
    if (owner_ != nullptr) owner_->OnUpstreamConnected();
    return;
  }
  CountConnectFailure(pool_.ctx_, stats_, event);
  if (owner_ == nullptr) return OnIdleEvent();
  Owner* owner = owner_;
  if (event == TcpConnection::Event::kRemoteReset) {
    owner->OnUpstreamReset();
  } else {
    owner->OnUpstreamConnectFailed(event);
  }
}

void Http1Connection::OnWriteHighWatermark() {
  if (owner_ != nullptr) owner_->OnUpstreamAboveHighWatermark();
}

void Http1Connection::OnWriteLowWatermark() {
  if (owner_ != nullptr) owner_->OnUpstreamBelowLowWatermark();
}

void Http1Connection::OnIdleEvent() { pool_.Close(this); }

// ---- Http1Pool --------------------------------------------------------------------------------

Http1Pool::~Http1Pool() { CloseIdle(); }

void Http1Pool::CloseIdle() {
  std::vector<Http1Connection*> idle;
  for (auto& [key, ep] : pools_) idle.insert(idle.end(), ep->idle.begin(), ep->idle.end());
  for (Http1Connection* c : idle) Close(c);
}

Http1Connection* Http1Pool::Acquire(const server::ClusterRuntime& cluster,
                                    const server::EndpointRuntime& endpoint,
                                    Http1Connection::Owner* owner, bool fresh, bool* reused) {
  auto& slot = pools_[EndpointKey{endpoint.state.get()}];
  if (slot == nullptr) {
    slot = std::make_unique<Http1Connection::EndpointPool>();
    slot->state = endpoint.state;
  }
  Http1Connection::EndpointPool& ep = *slot;
  ep.max_idle = cluster.config->max_idle_connections;
  ep.idle_timeout = cluster.config->idle_connection_timeout;
  if (!fresh && !ep.idle.empty()) {
    Http1Connection* c = ep.idle.back();
    ep.idle.pop_back();
    c->owner_ = owner;
    c->reused_ = true;
    c->read_mark_ = c->conn_->bytes_read();
    *reused = true;
    return c;
  }
  *reused = false;
  if (!ReserveConnectionSlot(cluster)) return nullptr;
  auto* c = new Http1Connection(*this, ep, cluster);
  c->owner_ = owner;
  c->conn_ = ConnectCounted(ctx_, cluster, endpoint, server::kAlpnHttp1);
  c->conn_->SetCallbacks(c);
  c->conn_->ReadEnable(true);
  c->idle_timer_ = ctx_.dispatcher.CreateTimer([this, c] { OnIdleTimer(c); });
  ++ep.total;
  return c;
}

void Http1Pool::Release(Http1Connection* c, bool reusable) {
  c->owner_ = nullptr;
  Http1Connection::EndpointPool& ep = c->endpoint_pool_;
  if (!reusable || c->closed_ || !c->connected_ || ep.idle.size() >= ep.max_idle) {
    Close(c);
    return;
  }
  c->codec_.Resume();
  c->conn_->ReadEnable(true);
  // The timer stays armed across reuses (no stop/start per request): it checks when it fires.
  c->idle_since_ = ctx_.dispatcher.Now();
  if (!c->idle_timer_->Enabled()) c->idle_timer_->Enable(ep.idle_timeout);
  ep.idle.push_back(c);
}

void Http1Pool::OnIdleTimer(Http1Connection* c) {
  if (c->owner_ != nullptr) return;  // busy: Release arms it again
  Http1Connection::EndpointPool& ep = c->endpoint_pool_;
  absl::Duration idle = ctx_.dispatcher.Now() - c->idle_since_;
  if (idle < ep.idle_timeout) {
    c->idle_timer_->Enable(ep.idle_timeout - idle);
    return;
  }
  Close(c);
}

void Http1Pool::Close(Http1Connection* c) {
  if (c->closed_) return;
  c->closed_ = true;
  Http1Connection::EndpointPool& ep = c->endpoint_pool_;
  std::erase(ep.idle, c);
  --ep.total;
  CloseCounted(ctx_, c->stats_, *c->cluster_state_, *ep.state, *c->conn_);
  c->idle_timer_.reset();
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(c));
  if (ep.total == 0) pools_.erase(EndpointKey{ep.state.get()});
}

}  // namespace remora::upstream
