#include "proxy/upstream/http2_pool.h"

#include <algorithm>

#include "proxy/common/log.h"
#include "proxy/upstream/counted_connection.h"

namespace remora::upstream {

using event::TcpConnection;
using Failure = Http2UpstreamRequest::Failure;

namespace {
// Streams a connection is assumed to allow before the server's SETTINGS say (RFC 9113 6.5.2
// recommends no less than 100).
constexpr size_t kAssumedMaxStreams = 100;
}  // namespace

// ---- request ------------------------------------------------------------------------------------

Http2UpstreamRequest::~Http2UpstreamRequest() {
  if (conn_ != nullptr) conn_->Detach(this);
}

void Http2UpstreamRequest::ReadDisable(bool disabled) {
  read_disabled_ = disabled;
  if (stream_ != nullptr) stream_->ReadDisable(disabled);
}

// ---- connection ---------------------------------------------------------------------------------

Http2UpstreamConnection::Http2UpstreamConnection(Http2Pool& pool, EndpointPool& ep,
                                                 const server::ClusterRuntime& cluster,
                                                 const http::Http2Settings& settings)
    : pool_(pool),
      endpoint_pool_(ep),
      stats_(cluster.stats),
      cluster_state_(cluster.state),
      buffer_limit_(settings.stream_buffer_limit),
      codec_(settings, out_, pool.ctx_.dispatcher, *this) {}

Http2UpstreamConnection::~Http2UpstreamConnection() = default;

bool Http2UpstreamConnection::HasRoom() const {
  if (closed_ || goaway_) return false;
  if (!connected_) return waiting_.size() < kAssumedMaxStreams;
  return codec_.available_streams() > 0;
}

void Http2UpstreamConnection::Attach(Http2UpstreamRequest* r) {
  r->conn_ = this;
  idle_timer_->Disable();
  if (connected_) {
    OpenStream(r);
  } else {
    waiting_.push_back(r);
  }
}

void Http2UpstreamConnection::OpenStream(Http2UpstreamRequest* r) {
  http::Http2ClientCodec::ClientStream* s = codec_.NewClientStream();
  s->set_decoder(&r->owner_);
  r->stream_ = s;
  streams_[s] = r;
  if (r->read_disabled_) s->ReadDisable(true);
}

void Http2UpstreamConnection::Detach(Http2UpstreamRequest* r) {
  std::erase(waiting_, r);
  if (r->stream_ != nullptr) {
    http::Http2ClientCodec::ClientStream* s = r->stream_;
    streams_.erase(s);
    s->set_decoder(nullptr);
    // Cancel what is still moving; a stream done both ways is closing by itself.
    if (!s->closed() && !(s->remote_complete() && s->local_complete())) s->Reset(NGHTTP2_CANCEL);
    r->stream_ = nullptr;
  }
  r->conn_ = nullptr;
  UpdateIdle();
}

void Http2UpstreamConnection::UpdateIdle() {
  if (closed_) return;
  if (!streams_.empty() || !waiting_.empty() || codec_.active_streams() > 0) return;
  if (goaway_) {
    pool_.Close(this);
    return;
  }
  idle_timer_->Enable(idle_timeout_);
}

void Http2UpstreamConnection::SendOut() {
  if (closed_) return;
  send_timer_->Disable();
  // As downstream (Http2ConnectionManager::SendOut): fill the socket up to the limit.
  while (conn_->write_backlog() < buffer_limit_) {
    codec_.Send(buffer_limit_ - conn_->write_backlog());
    if (out_.empty()) break;
    conn_->Write(out_);
  }
  if (codec_.WantsClose() && !closed_) {
    LOG_DEBUG("upstream HTTP/2 connection ends: %s", codec_.error_detail());
    Fail(Failure::kReset);
    pool_.Close(this);
  }
}

void Http2UpstreamConnection::OnWantsSend() {
  if (!dispatching_ && !closed_ && connected_ && !send_timer_->Enabled()) {
    send_timer_->Enable(absl::ZeroDuration());
  }
}

void Http2UpstreamConnection::Fail(Failure failure) {
  // No new stream from here on: an owner told below may start its next request (a pipelined
  // one) at once, and it must go to another connection.
  goaway_ = true;
  // Every request still here learns of the failure once; their destructors find them detached.
  while (!waiting_.empty()) {
    Http2UpstreamRequest* r = waiting_.front();
    waiting_.erase(waiting_.begin());
    r->conn_ = nullptr;
    r->owner_.OnUpstreamFailed(failure);
  }
  codec_.CloseAllStreams(NGHTTP2_CANCEL);
}

void Http2UpstreamConnection::OnRead(buffer::Buffer& data) {
  dispatching_ = true;
  bool ok = codec_.Dispatch(data);
  dispatching_ = false;
  if (closed_) return;
  // A connection error has queued a GOAWAY: SendOut sends it and closes.
  if (!ok) LOG_DEBUG("upstream HTTP/2 connection error: %s", codec_.error_detail());
  SendOut();
}

void Http2UpstreamConnection::OnEndOfStream() {
  Fail(Failure::kReset);
  pool_.Close(this);
}

void Http2UpstreamConnection::OnEvent(TcpConnection::Event event) {
  if (event == TcpConnection::Event::kConnected) {
    connected_ = true;
    // One at a time from the list itself: an owner's call may end other waiting requests (they
    // leave the list) or the connection.
    while (!waiting_.empty() && !closed_) {
      Http2UpstreamRequest* r = waiting_.front();
      waiting_.erase(waiting_.begin());
      OpenStream(r);
      r->owner_.OnUpstreamReady();
    }
    SendOut();
    return;
  }
  CountConnectFailure(pool_.ctx_, stats_, event);
  Failure failure = Failure::kReset;
  if (event == TcpConnection::Event::kConnectTimeout) {
    failure = Failure::kConnectTimeout;
  } else if (event == TcpConnection::Event::kConnectFailed ||
             event == TcpConnection::Event::kConnectLocalError) {
    failure = Failure::kConnectFailure;
  }
  Fail(failure);
  pool_.Close(this);
}

void Http2UpstreamConnection::OnStreamClosed(http::Http2Codec::Stream& s, uint32_t error_code) {
  auto it = streams_.find(&s);
  if (it == streams_.end()) return UpdateIdle();
  Http2UpstreamRequest* r = it->second;
  streams_.erase(it);
  r->stream_ = nullptr;
  r->conn_ = nullptr;
  auto& cs = static_cast<http::Http2ClientCodec::ClientStream&>(s);
  bool clean = error_code == NGHTTP2_NO_ERROR && s.remote_complete();
  if (!clean) {
    LOG_DEBUG("upstream HTTP/2 stream %d closed: %s", s.id(), nghttp2_http2_strerror(error_code));
    bool refused = error_code == NGHTTP2_REFUSED_STREAM && !cs.response_started();
    r->owner_.OnUpstreamFailed(refused ? Failure::kRefused : Failure::kReset);
  }
  UpdateIdle();
}

void Http2UpstreamConnection::OnStreamQueueLimit(http::Http2Codec::Stream& s, bool above) {
  auto it = streams_.find(&s);
  if (it != streams_.end()) it->second->owner_.OnUpstreamQueueLimit(above);
}

void Http2UpstreamConnection::OnGoaway(int32_t, uint32_t) {
  // No new streams here; those above last_stream_id close as REFUSED_STREAM (nghttp2).
  goaway_ = true;
}

// ---- pool ---------------------------------------------------------------------------------------

Http2Pool::~Http2Pool() {
  std::vector<Http2UpstreamConnection*> all;
  for (auto& [key, ep] : pools_) all.insert(all.end(), ep->conns.begin(), ep->conns.end());
  for (Http2UpstreamConnection* c : all) {
    c->Fail(Failure::kReset);
    Close(c);
  }
}

void Http2Pool::CloseIdle() {
  std::vector<Http2UpstreamConnection*> all;
  for (auto& [key, ep] : pools_) all.insert(all.end(), ep->conns.begin(), ep->conns.end());
  for (Http2UpstreamConnection* c : all) {
    c->goaway_ = true;  // take no new streams
    c->UpdateIdle();
  }
}

std::unique_ptr<Http2UpstreamRequest> Http2Pool::Request(const server::ClusterRuntime& cluster,
                                                         const server::EndpointRuntime& endpoint,
                                                         Http2UpstreamRequest::Owner& owner) {
  auto& slot = pools_[endpoint.state.get()];
  if (slot == nullptr) {
    slot = std::make_unique<Http2UpstreamConnection::EndpointPool>();
    slot->state = endpoint.state;
  }
  Http2UpstreamConnection::EndpointPool& ep = *slot;
  std::unique_ptr<Http2UpstreamRequest> r(new Http2UpstreamRequest(owner));
  for (Http2UpstreamConnection* c : ep.conns) {
    if (c->HasRoom()) {
      c->Attach(r.get());
      return r;
    }
  }
  if (!ReserveConnectionSlot(cluster)) {
    if (ep.conns.empty()) pools_.erase(endpoint.state.get());
    return nullptr;
  }
  http::Http2Settings settings;
  auto* c = new Http2UpstreamConnection(*this, ep, cluster, settings);
  c->idle_timeout_ = cluster.config->idle_connection_timeout;
  c->conn_ = ConnectCounted(ctx_, cluster, endpoint, server::kAlpnHttp2);
  c->conn_->SetCallbacks(c);
  c->conn_->SetWriteWatermarks(settings.stream_buffer_limit / 2, settings.stream_buffer_limit);
  c->conn_->ReadEnable(true);
  c->idle_timer_ = ctx_.dispatcher.CreateTimer([this, c] { Close(c); });
  c->send_timer_ = ctx_.dispatcher.CreateTimer([c] { c->SendOut(); });
  ep.conns.push_back(c);
  c->Attach(r.get());
  return r;
}

void Http2Pool::Close(Http2UpstreamConnection* c) {
  if (c->closed_) return;
  c->closed_ = true;
  Http2UpstreamConnection::EndpointPool& ep = c->endpoint_pool_;
  std::erase(ep.conns, c);
  CloseCounted(ctx_, c->stats_, *c->cluster_state_, *ep.state, *c->conn_);
  c->idle_timer_.reset();
  c->send_timer_.reset();
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(c));
  if (ep.conns.empty()) pools_.erase(ep.state.get());
}

}  // namespace remora::upstream
