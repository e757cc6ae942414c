#include "proxy/http/router.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "proxy/common/log.h"
#include "proxy/http/deadline.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::http {

using event::TcpConnection;

const FilterFactory RouterFilter::kFactory{"router", &RouterFilter::Create};

std::unique_ptr<StreamFilter> RouterFilter::Create(const server::ListenerRuntime&) {
  return std::make_unique<RouterFilter>();
}

FilterStatus RouterFilter::DecodeHeaders(RequestHead& head, bool end_stream) {
  request_ = &head;
  request_complete_ = end_stream;
  const server::ListenerRuntime& listener = callbacks_->listener();
  buffer_limit_ = listener.config->buffer_limit_bytes;
  route_ = listener.routes.Match(head);
  if (route_ == nullptr) {
    callbacks_->SendLocalReply(404, "no_route", "no route matches this request");
    return FilterStatus::kStop;
  }
  const config::Route& r = *route_->config;
  for (const std::string& name : r.request_headers_to_remove) head.headers.Remove(name);
  for (const config::HeaderValue& h : r.request_headers_to_add) head.headers.Set(h.name, h.value);
  if (listener.config->forward_normalized_path) head.path = head.normalized_path;
  if (!UsesHttp2() && callbacks_->info().grpc) {
    callbacks_->SendLocalReply(502, "upstream_protocol_unsupported",
                               "gRPC needs an HTTP/2 upstream; this cluster speaks HTTP/1.1");
    return FilterStatus::kStop;
  }
  if (std::optional<absl::Duration> budget = InboundBudget(head.headers, callbacks_->info().grpc)) {
    // The caller gives up after `budget`: no point working longer, nor at all if it is spent.
    if (*budget <= absl::ZeroDuration()) {
      callbacks_->SendLocalReply(504, "deadline_exceeded",
                                 "the request's deadline had passed when it arrived");
      return FilterStatus::kStop;
    }
    deadline_ = callbacks_->dispatcher().Now() + *budget;
    deadline_timer_ = callbacks_->dispatcher().CreateTimer([this] { OnDeadline(); });
    deadline_timer_->Enable(*budget);
  }
  callbacks_->SetDownstreamWatermarkCallbacks(this);
  if (request_complete_) StartTimeout();
  Attempt(/*force_new=*/false);
  return FilterStatus::kStop;
}

void RouterFilter::Attempt(bool force_new) {
  const server::ClusterRuntime& cluster = *route_->cluster;
  server::WorkerContext& worker = callbacks_->worker();
  auto& rr = cluster.per_worker[static_cast<size_t>(worker.index)].rr_next;
  const server::EndpointRuntime& ep = cluster.endpoints[rr++ % cluster.endpoints.size()];
  if (UsesHttp2()) {
    h2_ = worker.http2_pool->Request(cluster, ep, *this);
    if (h2_ == nullptr) {
      worker.stats.Add(cluster.stats.overflow);
      callbacks_->SendLocalReply(503, "overflow", "upstream cluster is at its connection limit");
      return;
    }
    if (h2_->ready()) SendRequestHead();
    return;
  }
  bool reused = false;
  conn_ = worker.http1_pool->Acquire(cluster, ep, this, force_new, &reused);
  if (conn_ == nullptr) {
    worker.stats.Add(cluster.stats.overflow);
    callbacks_->SendLocalReply(503, "overflow", "upstream cluster is at its connection limit");
    return;
  }
  if (reused) SendRequestHead();
}

bool RouterFilter::UsesHttp2() const {
  switch (route_->cluster->config->protocol) {
    case config::UpstreamProtocol::kHttp1:
      return false;
    case config::UpstreamProtocol::kHttp2:
      return true;
    case config::UpstreamProtocol::kAuto:
      break;
  }
  return callbacks_->info().downstream_http2;
}

bool RouterFilter::UpstreamOpen() const {
  return conn_ != nullptr || (h2_ != nullptr && h2_->ready());
}

RequestEncoder& RouterFilter::encoder() {
  if (h2_ != nullptr) return h2_->encoder();
  return conn_->codec();
}

void RouterFilter::FlushUpstream() {
  if (conn_ != nullptr) conn_->Flush();  // HTTP/2 streams: the connection batches its frames
}

void RouterFilter::SetUpstreamBudget() {
  // Only a caller's budget travels: a request that came without one goes on without one (the
  // route's timeout is this proxy's business, and the header would cost every request).
  if (deadline_ == absl::InfiniteFuture()) return;
  // What is left of it, capped by the route's timeout once the whole request is here (the
  // timeout then runs from now; it does not count an upload still arriving).
  absl::Duration left = deadline_ - callbacks_->dispatcher().Now();
  absl::Duration timeout = route_->config->timeout;
  if (request_complete_ && timeout > absl::ZeroDuration()) left = std::min(left, timeout);
  SetOutboundBudget(request_->headers, callbacks_->info().grpc, left);
}

void RouterFilter::SendRequestHead() {
  if (conn_ != nullptr) conn_->codec().set_decoder(this);
  SetUpstreamBudget();
  RequestEncoder& codec = encoder();
  bool end = request_complete_ && pending_body_.empty() && !trailers_pending_;
  codec.EncodeHeaders(*request_, end);
  head_sent_ = true;
  if (!pending_body_.empty() || (request_complete_ && !trailers_pending_ && !end)) {
    codec.EncodeData(pending_body_, request_complete_ && !trailers_pending_);
  }
  if (trailers_pending_) codec.EncodeTrailers(pending_trailers_);
  FlushUpstream();
  pending_over_limit_ = false;
  UpdateDownstreamReading();
}

void RouterFilter::UpdateDownstreamReading() {
  // Two reasons to stop reading the client: the body waiting for a connection is over the
  // limit, or the upstream's write backlog is. Reading resumes only when neither holds.
  bool disable = pending_over_limit_ || upstream_above_high_;
  if (disable == downstream_read_disabled_) return;
  downstream_read_disabled_ = disable;
  callbacks_->SetDownstreamReadDisabled(disable);
}

void RouterFilter::StartTimeout() {
  // Like a whole-request timeout that does not count the upload: a long body to a slow reader
  // is backpressure, not an unresponsive upstream.
  absl::Duration timeout = route_->config->timeout;
  if (timeout <= absl::ZeroDuration() || response_started_) return;
  Arm(callbacks_->worker().timeouts->For(timeout));
}

FilterStatus RouterFilter::DecodeData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) {
    request_complete_ = true;
    StartTimeout();
  }
  if (head_sent_) {
    if (UpstreamOpen()) {
      encoder().EncodeData(data, end_stream);
      FlushUpstream();
    } else {
      data.Clear();  // the upstream exchange is over (its response is complete): nowhere to go
    }
    return FilterStatus::kStop;
  }
  pending_body_.Move(data);
  if (pending_body_.length() > buffer_limit_) {
    pending_over_limit_ = true;
    UpdateDownstreamReading();
  }
  return FilterStatus::kStop;
}

FilterStatus RouterFilter::DecodeTrailers(HeaderMap& trailers) {
  request_complete_ = true;
  StartTimeout();
  if (head_sent_) {
    if (UpstreamOpen()) {
      encoder().EncodeTrailers(trailers);
      FlushUpstream();
    }
    return FilterStatus::kStop;
  }
  trailers_pending_ = true;
  for (size_t i = 0; i < trailers.size(); ++i)
    pending_trailers_.Add(trailers.name(i), trailers.value(i));
  return FilterStatus::kStop;
}

void RouterFilter::OnDestroy() {
  destroyed_ = true;
  Disarm();
  deadline_timer_.reset();
  h2_.reset();  // cancels a stream still open
  // Inside the codec's Dispatch the connection must not go back to the pool yet: the parser is
  // mid-message, and it must deliver nothing more to this router. OnUpstreamData releases it
  // when Dispatch returns.
  if (dispatching_) {
    if (!response_complete_ && conn_ != nullptr) conn_->codec().Stop();
    return;
  }
  ReleaseConnection(conn_ != nullptr && response_complete_ && request_complete_ && !tunnel_ &&
                    conn_->codec().keep_alive());
}

void RouterFilter::ReleaseConnection(bool reusable) {
  h2_.reset();
  if (conn_ == nullptr) return;
  upstream::Http1Connection* c = conn_;
  conn_ = nullptr;
  callbacks_->worker().http1_pool->Release(c, reusable);
}

void RouterFilter::OnUpstreamFailure(int status, absl::string_view reason, absl::string_view detail,
                                     bool retryable) {
  bool may_retry = retryable && !retried_ && conn_ != nullptr && conn_->reused() &&
                   conn_->response_bytes() == 0 && !response_started_ &&
                   IsIdempotentMethod(request_->method) && request_->framing == Framing::kNone;
  ReleaseConnection(false);
  if (may_retry) {
    retried_ = true;
    head_sent_ = false;
    Attempt(/*force_new=*/true);
    return;
  }
  Disarm();
  if (response_started_) {
    callbacks_->ResetStream();
  } else {
    callbacks_->SendLocalReply(status, reason, detail);
  }
}

void RouterFilter::OnDeadline() {
  // Failing the stream ends it: the upstream attempt is cancelled with it (RST_STREAM CANCEL on
  // HTTP/2, the connection closed on HTTP/1.1). A response under way is reset; a whole one
  // (the request may still be arriving) stands.
  if (response_complete_) return;
  retried_ = true;
  OnUpstreamFailure(504, "deadline_exceeded",
                    "the request's deadline passed before the upstream answered", false);
}

void RouterFilter::OnTimeout() {
  if (response_started_) return;
  retried_ = true;  // a timeout is never retried here
  OnUpstreamFailure(504, "upstream_timeout", "upstream did not answer in time", false);
}

// ---- Http1Connection::Owner -------------------------------------------------------------------

void RouterFilter::OnUpstreamConnected() { SendRequestHead(); }

void RouterFilter::OnUpstreamConnectFailed(TcpConnection::Event event) {
  retried_ = true;
  if (event == TcpConnection::Event::kConnectTimeout) {
    OnUpstreamFailure(504, "connect_timeout", "upstream connect timed out", false);
  } else {
    OnUpstreamFailure(502, "connect_failure", "upstream connect failed", false);
  }
}

void RouterFilter::OnUpstreamData(buffer::Buffer& data) {
  if (tunnel_) {
    callbacks_->TunnelWrite(data);
    return;
  }
  upstream::Http1Connection* conn = conn_;
  dispatching_ = true;
  DispatchResult result = conn->codec().Dispatch(data);
  dispatching_ = false;
  if (destroyed_) {
    // The stream ended inside Dispatch (the response completed or a local reply was sent).
    // The connection is reused only if the exchange ended cleanly and the server keeps it open.
    ReleaseConnection(result == DispatchResult::kMessageComplete && request_complete_ &&
                      data.empty() && conn->codec().keep_alive());
    return;
  }
  switch (result) {
    case DispatchResult::kNeedMore:
    case DispatchResult::kStopped:
      return;
    case DispatchResult::kMessageComplete:
      // The response is complete but the stream lives on (the request is still uploading):
      // the connection is not reusable, the request body was cut short for it.
      if (!data.empty()) ReleaseConnection(false);
      return;
    case DispatchResult::kUpgrade:
      tunnel_ = true;
      callbacks_->StartTunnel(this);
      if (!data.empty()) callbacks_->TunnelWrite(data);
      return;
    case DispatchResult::kError:
      OnUpstreamFailure(502, "upstream_protocol_error", conn->codec().error_detail(), false);
      return;
  }
}

void RouterFilter::OnUpstreamEndOfStream() {
  if (tunnel_) {
    callbacks_->TunnelShutdown();
    return;
  }
  if (response_complete_) {
    // The response is whole (an encode filter holds it); the FIN only ends the connection.
    ReleaseConnection(false);
    return;
  }
  dispatching_ = true;
  bool complete = conn_->codec().OnEndOfStream();
  dispatching_ = false;
  if (destroyed_) {
    ReleaseConnection(false);
    return;
  }
  if (complete && response_complete_) {
    ReleaseConnection(false);
    return;
  }
  OnUpstreamFailure(502, "upstream_reset", "upstream closed the connection before a whole response",
                    true);
}

void RouterFilter::OnUpstreamReset() {
  if (tunnel_) {
    ReleaseConnection(false);
    callbacks_->ResetStream();
    return;
  }
  OnUpstreamFailure(502, "upstream_reset", "upstream reset the connection", true);
}

void RouterFilter::OnUpstreamAboveHighWatermark() {
  upstream_above_high_ = true;
  UpdateDownstreamReading();
}

void RouterFilter::OnUpstreamBelowLowWatermark() {
  upstream_above_high_ = false;
  UpdateDownstreamReading();
}

void RouterFilter::OnDownstreamAboveHighWatermark() {
  if (conn_ != nullptr) conn_->ReadEnable(false);
  if (h2_ != nullptr) h2_->ReadDisable(true);
}

void RouterFilter::OnDownstreamBelowLowWatermark() {
  if (conn_ != nullptr) conn_->ReadEnable(true);
  if (h2_ != nullptr) h2_->ReadDisable(false);
}

// ---- Http2UpstreamRequest::Owner --------------------------------------------------------------

void RouterFilter::OnUpstreamReady() { SendRequestHead(); }

void RouterFilter::OnUpstreamFailed(upstream::Http2UpstreamRequest::Failure failure) {
  using Failure = upstream::Http2UpstreamRequest::Failure;
  h2_.reset();
  switch (failure) {
    case Failure::kConnectFailure:
      retried_ = true;
      OnUpstreamFailure(502, "connect_failure", "upstream connect failed", false);
      return;
    case Failure::kConnectTimeout:
      retried_ = true;
      OnUpstreamFailure(504, "connect_timeout", "upstream connect timed out", false);
      return;
    case Failure::kRefused:
      // Never processed by the server: any method may go again, if its body was not consumed.
      if (!retried_ && !response_started_ && request_->framing == Framing::kNone) {
        retried_ = true;
        head_sent_ = false;
        Attempt(/*force_new=*/true);
        return;
      }
      OnUpstreamFailure(502, "upstream_reset", "upstream refused the stream", false);
      return;
    case Failure::kReset:
      OnUpstreamFailure(502, "upstream_reset", "upstream reset the stream", false);
      return;
  }
}

void RouterFilter::OnUpstreamQueueLimit(bool above) {
  upstream_above_high_ = above;
  UpdateDownstreamReading();
}

void RouterFilter::OnTunnelData(buffer::Buffer& data) {
  if (conn_ == nullptr) return data.Clear();
  conn_->codec().EncodeData(data, false);  // not chunked after an upgrade: raw bytes
  conn_->Flush();
}

void RouterFilter::OnTunnelEnd() {
  if (conn_ != nullptr) conn_->Shutdown();
}

// ---- ResponseDecoder --------------------------------------------------------------------------

void RouterFilter::OnInformational(ResponseHead& head) {
  if (destroyed_) return;
  // 100 Continue and 103 Early Hints are relayed; the final response follows.
  callbacks_->EncodeInformational(head);
}

void RouterFilter::OnHeaders(ResponseHead& head, bool end_stream) {
  if (destroyed_) return;
  response_started_ = true;
  Disarm();
  const config::Route& r = *route_->config;
  for (const std::string& name : r.response_headers_to_remove) head.headers.Remove(name);
  for (const config::HeaderValue& h : r.response_headers_to_add) head.headers.Set(h.name, h.value);
  if (end_stream) response_complete_ = true;
  if (head.status == 101) {
    deadline_timer_.reset();  // a tunnel lives as long as its peers want
    callbacks_->EncodeHeaders(head, false);
    return;
  }
  callbacks_->EncodeHeaders(head, end_stream);
}

void RouterFilter::OnData(buffer::Buffer& data, bool end_stream) {
  if (destroyed_) return;
  if (end_stream) response_complete_ = true;
  callbacks_->EncodeData(data, end_stream);
}

void RouterFilter::OnTrailers(HeaderMap& trailers) {
  if (destroyed_) return;
  response_complete_ = true;
  callbacks_->EncodeTrailers(trailers);
}

}  // namespace remora::http
