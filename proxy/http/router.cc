#include "proxy/http/router.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/http/deadline.h"
#include "proxy/network/address.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"
#include "proxy/upstream/original_dst.h"
#include "proxy/upstream/outlier.h"
#include "proxy/upstream/slot.h"

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
  route_ = callbacks_->info().route;
  const network::Destination* destination = callbacks_->info().destination;
  if (route_ == nullptr) {
    callbacks_->SendLocalReply(404, "no_route", "no route matches this request");
    return FilterStatus::kStop;
  }
  if (route_->cluster->config->type == config::ClusterType::kOriginalDst &&
      destination == nullptr) {
    callbacks_->SendLocalReply(404, "no_route",
                               "the route's cluster forwards to the original destination, and "
                               "this connection was made straight to the listener");
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
      callbacks_->worker().stats.Add(route_->cluster->stats.deadline_exceeded);
      callbacks_->SendLocalReply(504, "deadline_exceeded",
                                 "the request's deadline had passed when it arrived");
      return FilterStatus::kStop;
    }
    deadline_ = callbacks_->dispatcher().Now() + *budget;
    deadline_timer_.emplace(*callbacks_->worker().timeouts, [this] { OnDeadline(); });
    deadline_timer_->ArmAt(deadline_);
  }
  callbacks_->SetDownstreamWatermarkCallbacks(this);
  const server::ClusterRuntime& cluster = *route_->cluster;
  if (uint32_t max = cluster.config->max_requests) {  // the bulkhead, exact across workers
    if (!upstream::TryReserve(cluster.state->limited_requests, max)) {
      callbacks_->worker().stats.Add(cluster.stats.overflow);
      callbacks_->SendLocalReply(503, "overflow", "upstream cluster is at max_requests");
      return FilterStatus::kStop;
    }
    holds_request_slot_ = true;
  }
  cluster.AddActiveRequest(callbacks_->worker().index, 1);
  counted_ = true;
  if (r.has_retries) {
    bool idempotent =
        r.idempotent || IsIdempotentMethod(head.method) || head.headers.Has("idempotency-key");
    retry_.emplace(r.retries, *cluster.config, cluster.state->retry_budget, idempotent,
                   callbacks_->dispatcher());
    replayable_ = true;
  }
  if (request_complete_) StartTimeout();
  Attempt(/*force_new=*/false);
  return FilterStatus::kStop;
}

const server::EndpointRuntime* RouterFilter::PickEndpoint() {
  const server::ClusterRuntime& cluster = *route_->cluster;
  server::WorkerContext& worker = callbacks_->worker();
  if (cluster.config->type == config::ClusterType::kOriginalDst) {
    // One endpoint, the destination, every attempt; no breaker, no load balancing.
    if (original_dst_ == nullptr) {
      original_dst_ = std::make_unique<server::EndpointRuntime>();
      worker.original_dst->Get(cluster, *callbacks_->info().destination, original_dst_.get());
    }
    return original_dst_.get();
  }
  upstream::LbRequest lb;
  lb.tried = tried_;
  if (cluster.config->lb_policy == config::LbPolicy::kRingHash) {
    const std::string& header = cluster.config->hash_header;
    absl::string_view key = header.empty()
                                ? absl::string_view(callbacks_->info().downstream_address)
                                : request_->headers.Get(header);
    // A request without the header is placed at random (it has no key to keep).
    lb.has_hash = !key.empty();
    if (lb.has_hash) lb.hash = upstream::HashKey(key);
  }
  upstream::LbPick pick = upstream::PickEndpoint(cluster, worker.index, lb,
                                                 callbacks_->dispatcher().Now(), worker.stats);
  if (pick.circuit_open || pick.none_available) {
    circuit_open_ = pick.circuit_open;
    return nullptr;
  }
  uint32_t i = pick.endpoint;
  if (i < 64) tried_ |= uint64_t{1} << i;
  endpoint_index_ = i;
  cluster.AddEndpointActive(worker.index, i, 1);
  endpoint_counted_ = true;
  outcome_pending_ = true;
  probe_ = pick.probe;
  return &cluster.endpoints[i];
}

void RouterFilter::RecordOutcome(upstream::AttemptEnd end, int status) {
  if (!outcome_pending_) return;
  outcome_pending_ = false;
  // Without a breaker there is nothing to feed (and no probe: only a breaker hands those out).
  if (!route_->cluster->config->circuit_breaker.enabled) return;
  upstream::RecordOutcome(*route_->cluster, endpoint_index_, upstream::FailureClass(end, status),
                          probe_, callbacks_->dispatcher().Now(), callbacks_->worker().stats);
  probe_ = false;
}

void RouterFilter::EndAttemptCount() {
  ReleasePendingSlot();
  if (outcome_pending_) {
    // Ended without an outcome of its own (the caller left, its deadline passed, a local
    // overflow): nothing to hold against the endpoint, only the probe slot to give back.
    outcome_pending_ = false;
    if (probe_) route_->cluster->endpoints[endpoint_index_].state->breaker.ReleaseProbe();
    probe_ = false;
  }
  if (!endpoint_counted_) return;
  endpoint_counted_ = false;
  route_->cluster->AddEndpointActive(callbacks_->worker().index, endpoint_index_, -1);
}

void RouterFilter::SendFallback() {
  // The route's own answer while the cluster is down; it still says why.
  const config::FallbackResponse& f = route_->config->fallback;
  ResponseHead& head = fallback_head_;
  head.Clear();
  head.status = f.status;
  for (const config::HeaderValue& h : f.headers) head.headers.Set(h.name, h.value);
  head.headers.Set("x-remora-reason", "circuit_open");
  head.framing = Framing::kContentLength;
  head.content_length = f.body.size();
  callbacks_->info().reason = "circuit_open";
  response_started_ = true;
  response_complete_ = f.body.empty();
  callbacks_->EncodeHeaders(head, f.body.empty());
  if (f.body.empty() || destroyed_) return;
  buffer::Buffer body;
  body.Append(f.body);
  response_complete_ = true;
  callbacks_->EncodeData(body, true);
}

void RouterFilter::Attempt(bool force_new) {
  const server::ClusterRuntime& cluster = *route_->cluster;
  server::WorkerContext& worker = callbacks_->worker();
  const server::EndpointRuntime* picked = PickEndpoint();
  if (picked == nullptr) {
    // The cluster breaker is open, or every endpoint is out of rotation without panic: no
    // endpoint may be tried, so fail now rather than at a timeout. Ends any retry and timer like
    // any final failure.
    Disarm();
    per_try_.Disarm();
    if (retry_.has_value()) retry_->Cancel();
    if (!circuit_open_) {
      callbacks_->SendLocalReply(503, "no_healthy_upstream",
                                 "every endpoint of the upstream cluster is out of rotation");
      return;
    }
    worker.stats.Add(cluster.stats.circuit_open);
    if (route_->config->has_fallback) {
      SendFallback();
    } else {
      callbacks_->SendLocalReply(503, "circuit_open",
                                 "every endpoint of the upstream cluster is failing; its circuit "
                                 "breaker is open");
    }
    return;
  }
  const server::EndpointRuntime& ep = *picked;
  worker.stats.Add(cluster.stats.attempts);
  if (retry_.has_value()) retry_->OnAttempt();
  uint32_t attempts = retry_.has_value() ? retry_->attempts() : 1 + retried_;
  if (retry_.has_value() || attempts > 1) callbacks_->info().upstream_attempts = attempts;
  bool ready = false;  // the request can go at once (a stream on an open connection, a reused one)
  if (UsesHttp2()) {
    h2_ = worker.http2_pool->Request(cluster, ep, *this);
    ready = h2_ != nullptr && h2_->ready();
  } else {
    conn_ = worker.http1_pool->Acquire(cluster, ep, this, force_new, &ready);
  }
  if (h2_ == nullptr && conn_ == nullptr) {
    // Ends the request, and any retry or timer of it: a local overflow is not an attempt's
    // failure, and is not retried.
    worker.stats.Add(cluster.stats.overflow);
    OnUpstreamFailure(503, "overflow", "upstream cluster is at its connection limit", std::nullopt);
    return;
  }
  if (uint32_t max = cluster.config->max_pending_requests; max != 0 && !ready) {
    // It waits for a connection or a stream: one of the cluster's pending slots.
    if (!upstream::TryReserve(cluster.state->pending_requests, max)) {
      worker.stats.Add(cluster.stats.overflow);
      OnUpstreamFailure(503, "overflow", "upstream cluster is at max_pending_requests",
                        std::nullopt);
      return;
    }
    holds_pending_slot_ = true;
  }
  if (request_complete_) ArmPerTryTimeout();
  if (ready) SendRequestHead();
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
  // What is left of it, capped by what the route's timeout (and per-try timeout) allow. Those
  // run from the end of the request. A head that goes before the body has all arrived (on a
  // warm connection, a gRPC call's head goes before its message) gets their full length: the
  // body usually ends at once, and the upstream must learn the route's limit. A long streaming
  // upload gets the same cap, so its upstream may stop before the proxy would.
  absl::Time now = callbacks_->dispatcher().Now();
  absl::Duration left = deadline_ - now;
  absl::Duration timeout = route_->config->timeout;
  if (timeout > absl::ZeroDuration()) {
    left = std::min(left, request_complete_ ? timeout - (now - complete_at_) : timeout);
  }
  if (retry_.has_value() && retry_->per_try_timeout() > absl::ZeroDuration()) {
    left = std::min(left, retry_->per_try_timeout());
  }
  SetOutboundBudget(request_->headers, callbacks_->info().grpc, left);
}

void RouterFilter::ReleasePendingSlot() {
  if (!holds_pending_slot_) return;
  holds_pending_slot_ = false;
  route_->cluster->state->pending_requests.fetch_sub(1, std::memory_order_relaxed);
}

void RouterFilter::SendRequestHead() {
  ReleasePendingSlot();
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
  // is backpressure, not an unresponsive upstream. It bounds every attempt and backoff.
  if (response_started_) return;
  // An attempt under way when the request completes gets its per-try timeout from now.
  if (h2_ != nullptr || conn_ != nullptr) ArmPerTryTimeout();
  absl::Duration timeout = route_->config->timeout;
  if (timeout <= absl::ZeroDuration()) return;
  complete_at_ = callbacks_->dispatcher().Now();
  Arm(callbacks_->worker().timeouts->For(timeout));
}

void RouterFilter::ArmPerTryTimeout() {
  if (!retry_.has_value()) return;
  absl::Duration t = retry_->per_try_timeout();
  if (t > absl::ZeroDuration()) per_try_.Arm(callbacks_->worker().timeouts->For(t));
}

void RouterFilter::KeepForReplay(const buffer::Buffer& data) {
  if (!replayable_) return;
  replay_body_.AppendSharedCompacting(data);
  if (replay_body_.length() > retry_->buffer_limit_bytes()) {
    // Too long to keep: this request will not be retried once its body has gone out.
    replayable_ = false;
    replay_body_.Clear();
  }
}

FilterStatus RouterFilter::DecodeData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) {
    request_complete_ = true;
    StartTimeout();
  }
  KeepForReplay(data);
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
  // Kept when they wait for the connection, or may be replayed.
  if (!head_sent_ || replayable_) {
    request_trailers_ = true;
    for (size_t i = 0; i < trailers.size(); ++i)
      pending_trailers_.Add(trailers.name(i), trailers.value(i));
  }
  if (head_sent_) {
    if (UpstreamOpen()) {
      encoder().EncodeTrailers(trailers);
      FlushUpstream();
    }
    return FilterStatus::kStop;
  }
  trailers_pending_ = true;
  return FilterStatus::kStop;
}

void RouterFilter::OnDestroy() {
  destroyed_ = true;
  Disarm();
  per_try_.Disarm();
  retry_.reset();  // stops a backoff, gives back a budget slot
  if (counted_) route_->cluster->AddActiveRequest(callbacks_->worker().index, -1);
  if (holds_request_slot_) {
    route_->cluster->state->limited_requests.fetch_sub(1, std::memory_order_relaxed);
  }
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
  EndAttemptCount();
  h2_.reset();
  if (conn_ == nullptr) return;
  upstream::Http1Connection* c = conn_;
  conn_ = nullptr;
  callbacks_->worker().http1_pool->Release(c, reusable);
}

void RouterFilter::OnUpstreamFailure(int status, absl::string_view reason, absl::string_view detail,
                                     std::optional<AttemptFailure::Kind> kind) {
  if (kind) {
    switch (*kind) {
      case AttemptFailure::Kind::kConnectFailure:
        RecordOutcome(upstream::AttemptEnd::kConnectFailure, 0);
        break;
      case AttemptFailure::Kind::kReset:
        RecordOutcome(upstream::AttemptEnd::kReset, 0);
        break;
      case AttemptFailure::Kind::kPerTryTimeout:
        RecordOutcome(upstream::AttemptEnd::kTimeout, 0);
        break;
      case AttemptFailure::Kind::kRefusedStream:  // unprocessed, by the server's choice
      case AttemptFailure::Kind::kResponse:       // recorded with the response head
        break;
    }
  }
  if (kind && TryRetry(AttemptFailure{*kind, 0, -1, std::nullopt})) return;
  ReleaseConnection(false);
  Disarm();
  per_try_.Disarm();
  if (retry_.has_value()) retry_->Cancel();
  if (response_started_) {
    callbacks_->ResetStream();
  } else {
    callbacks_->SendLocalReply(status, reason, detail);
  }
}

bool RouterFilter::TryRetry(const AttemptFailure& failure) {
  if (response_started_ || destroyed_) return false;
  // The request must be there to send again: untouched (it never left), kept for replay, or
  // without a body at all.
  bool resendable = !head_sent_ || replayable_ || request_->framing == Framing::kNone;
  if (!resendable) return false;
  const server::ClusterRuntime& cluster = *route_->cluster;
  server::WorkerContext& worker = callbacks_->worker();
  if (retry_.has_value()) {
    switch (retry_->Decide(failure, cluster.ActiveRequests())) {
      case RetryState::Decision::kRetry:
        worker.stats.Add(cluster.stats.retries);
        AbandonAttempt();
        PrepareResend();
        retry_->Schedule([this] { Attempt(/*force_new=*/false); });
        return true;
      case RetryState::Decision::kOverflow:
        worker.stats.Add(cluster.stats.retry_overflow);
        // The budget says no, except to the built-in retry of a stream the server refused
        // unprocessed (once), which routes without a policy get too.
        if (failure.kind != AttemptFailure::Kind::kRefusedStream) return false;
        break;
      case RetryState::Decision::kNo:
        break;
    }
  }
  // The built-in retries, once per request, of a body-less request on a fresh connection.
  if (retried_ || request_->framing != Framing::kNone) return false;
  bool keep_alive_race = failure.kind == AttemptFailure::Kind::kReset && conn_ != nullptr &&
                         conn_->reused() && conn_->response_bytes() == 0 &&
                         IsIdempotentMethod(request_->method);
  if (!keep_alive_race && failure.kind != AttemptFailure::Kind::kRefusedStream) return false;
  retried_ = true;
  worker.stats.Add(cluster.stats.retries);
  AbandonAttempt();
  PrepareResend();
  Attempt(/*force_new=*/true);
  return true;
}

void RouterFilter::AbandonAttempt() {
  per_try_.Disarm();
  // The next attempt starts with an empty write backlog.
  upstream_above_high_ = false;
  UpdateDownstreamReading();
  h2_.reset();  // RST_STREAM CANCEL if still open
  if (conn_ == nullptr) {
    EndAttemptCount();  // HTTP/1: when the connection is released, below or after Dispatch
    return;
  }
  if (dispatching_) {
    // Inside the codec's Dispatch (a response the policy retries): the parser goes on through
    // the response (its body is dropped), and when Dispatch returns (OnUpstreamData) the
    // connection goes back to the pool if the response was whole, so a storm of 503s does not
    // also churn connections.
    abandoned_ = true;
    return;
  }
  ReleaseConnection(false);
}

void RouterFilter::PrepareResend() {
  if (!head_sent_) return;  // the request never left: pending_body_ holds it all
  // The body went out with the failed attempt: the kept copy (shared, not copied) waits for the
  // next one, and body bytes arriving meanwhile join it in pending_body_ (with its
  // backpressure), so the next attempt gets the whole body even if it outgrows the replay limit
  // during the backoff.
  pending_body_.Clear();
  pending_body_.AppendSharedCompacting(replay_body_);
  trailers_pending_ = request_trailers_;
  head_sent_ = false;
  if (pending_body_.length() > buffer_limit_) {
    pending_over_limit_ = true;
    UpdateDownstreamReading();
  }
}

bool RouterFilter::RetryOnResponse(const ResponseHead& head, bool end_stream) {
  // A gRPC call's status is in a trailers-only response's one header block.
  int grpc_status = -1;
  if (end_stream && callbacks_->info().grpc) {
    int i = head.headers.Find("grpc-status");
    if (i >= 0) {
      int n;
      if (absl::SimpleAtoi(head.headers.value(static_cast<size_t>(i)), &n)) grpc_status = n;
    }
  }
  AttemptFailure f{AttemptFailure::Kind::kResponse, head.status, grpc_status, std::nullopt};
  if (!retry_->Covers(f)) return false;
  int ra = head.headers.Find("retry-after");
  if (ra >= 0) {
    f.retry_after = ParseRetryAfter(head.headers.value(static_cast<size_t>(ra)), absl::Now());
  }
  return TryRetry(f);
}

void RouterFilter::OnPerTryTimeout() {
  if (response_started_) return;
  callbacks_->worker().stats.Add(route_->cluster->stats.per_try_timeouts);
  OnUpstreamFailure(504, "per_try_timeout", "upstream did not answer within the per-try timeout",
                    AttemptFailure::Kind::kPerTryTimeout);
}

void RouterFilter::OnDeadline() {
  // Failing the stream ends it: the upstream attempt is cancelled with it (RST_STREAM CANCEL on
  // HTTP/2, the connection closed on HTTP/1.1), and so is a pending retry. A response under way
  // is reset; a whole one (the request may still be arriving) stands.
  if (response_complete_) return;
  callbacks_->worker().stats.Add(route_->cluster->stats.deadline_exceeded);
  OnUpstreamFailure(504, "deadline_exceeded",
                    "the request's deadline passed before the upstream answered", std::nullopt);
}

void RouterFilter::OnTimeout() {
  if (response_started_) return;
  callbacks_->worker().stats.Add(route_->cluster->stats.route_timeouts);
  RecordOutcome(upstream::AttemptEnd::kTimeout, 0);  // if an attempt was waiting on an endpoint
  OnUpstreamFailure(504, "upstream_timeout", "upstream did not answer in time", std::nullopt);
}

// ---- Http1Connection::Owner -------------------------------------------------------------------

void RouterFilter::OnUpstreamConnected() { SendRequestHead(); }

void RouterFilter::OnUpstreamConnectFailed(TcpConnection::Event event) {
  if (event == TcpConnection::Event::kConnectTimeout) {
    OnUpstreamFailure(504, "connect_timeout", "upstream connect timed out",
                      AttemptFailure::Kind::kConnectFailure);
  } else {
    OnUpstreamFailure(502, "connect_failure", "upstream connect failed",
                      AttemptFailure::Kind::kConnectFailure);
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
  if (abandoned_) {
    // The policy retries this response: reusable if it ended here, cleanly.
    abandoned_ = false;
    ReleaseConnection(result == DispatchResult::kMessageComplete && request_complete_ &&
                      data.empty() && conn->codec().keep_alive());
    return;
  }
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
      RecordOutcome(upstream::AttemptEnd::kReset, 0);
      OnUpstreamFailure(502, "upstream_protocol_error", conn->codec().error_detail(), std::nullopt);
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
  if (abandoned_) {
    abandoned_ = false;
    ReleaseConnection(false);
    return;
  }
  if (destroyed_) {
    ReleaseConnection(false);
    return;
  }
  if (complete && response_complete_) {
    ReleaseConnection(false);
    return;
  }
  OnUpstreamFailure(502, "upstream_reset", "upstream closed the connection before a whole response",
                    AttemptFailure::Kind::kReset);
}

void RouterFilter::OnUpstreamReset() {
  if (tunnel_) {
    ReleaseConnection(false);
    callbacks_->ResetStream();
    return;
  }
  OnUpstreamFailure(502, "upstream_reset", "upstream reset the connection",
                    AttemptFailure::Kind::kReset);
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
  using Kind = AttemptFailure::Kind;
  h2_.reset();
  switch (failure) {
    case Failure::kConnectFailure:
      OnUpstreamFailure(502, "connect_failure", "upstream connect failed", Kind::kConnectFailure);
      return;
    case Failure::kConnectTimeout:
      OnUpstreamFailure(504, "connect_timeout", "upstream connect timed out",
                        Kind::kConnectFailure);
      return;
    case Failure::kRefused:
      // Never processed by the server: any method may go again.
      OnUpstreamFailure(502, "upstream_reset", "upstream refused the stream", Kind::kRefusedStream);
      return;
    case Failure::kReset:
      OnUpstreamFailure(502, "upstream_reset", "upstream reset the stream", Kind::kReset);
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
  if (destroyed_ || abandoned_) return;
  RecordOutcome(upstream::AttemptEnd::kResponse, head.status);
  if (retry_.has_value() && (head.status >= 400 || (end_stream && callbacks_->info().grpc)) &&
      RetryOnResponse(head, end_stream)) {
    return;
  }
  response_started_ = true;
  Disarm();
  per_try_.Disarm();
  const config::Route& r = *route_->config;
  for (const std::string& name : r.response_headers_to_remove) head.headers.Remove(name);
  for (const config::HeaderValue& h : r.response_headers_to_add) head.headers.Set(h.name, h.value);
  if (uint32_t n = callbacks_->info().upstream_attempts) {
    head.headers.Set("x-remora-attempts", absl::StrCat(n));
  }
  if (end_stream) response_complete_ = true;
  if (head.status == 101) {
    deadline_timer_.reset();  // a tunnel lives as long as its peers want
    callbacks_->EncodeHeaders(head, false);
    return;
  }
  callbacks_->EncodeHeaders(head, end_stream);
}

void RouterFilter::OnData(buffer::Buffer& data, bool end_stream) {
  if (destroyed_ || abandoned_) return;
  if (end_stream) response_complete_ = true;
  callbacks_->EncodeData(data, end_stream);
}

void RouterFilter::OnTrailers(HeaderMap& trailers) {
  if (destroyed_ || abandoned_) return;
  response_complete_ = true;
  callbacks_->EncodeTrailers(trailers);
}

}  // namespace remora::http
