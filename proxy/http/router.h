#pragma once

// The router: the terminal filter of every http listener's chain. It matches the request to a
// route, applies the route's header changes, picks an endpoint of the route's cluster (its
// lb_policy, upstream/load_balancer.h), and runs one attempt upstream: on a pooled HTTP/1.1
// connection, or a stream of a pooled HTTP/2 connection (the cluster's `protocol`; `auto` follows
// the downstream's). Request out, response back through the encode chain, bodies streamed both ways
// with backpressure. A gRPC request is never sent to an HTTP/1 upstream: 502
// upstream_protocol_unsupported (gRPC UNAVAILABLE).
//
// On a transparent listener, a request no route matches takes the listener's passthrough route
// to an original_dst cluster: the one endpoint of every attempt is where the connection was going
// (StreamInfo::destination), its state shared per destination (upstream/original_dst.h) so the
// pools reuse connections to it.
//
// Failures before any response byte become local replies with their reason:
//   404 no_route (also: an original_dst route on a connection with no original destination),
//   503 overflow (cluster at max_connections, max_requests or
//   max_pending_requests), 503 circuit_open (every endpoint's breaker is open; or the route's
//   fallback response), 503 no_healthy_upstream (every endpoint out of rotation, no panic),
//   502 connect_failure,
//   504 connect_timeout, 502 upstream_reset (closed or reset before a whole response head),
//   502 upstream_protocol_error (malformed response), 504 upstream_timeout (route timeout),
//   504 per_try_timeout (the last attempt's), 504 deadline_exceeded (the caller's budget).
// After the response has begun, a failure resets the downstream (the client sees the cut).
//
// Retries: a route's retry policy (retry.h) decides whether a failed attempt goes again; the
// route timeout runs on across attempts and backoff, and the caller's deadline bounds them all.
// The request body is kept for replay (shared slices, no copy) up to the policy's limit. A
// response the policy retries is dropped unseen; once a response head has gone downstream,
// nothing is retried. The next attempt prefers an endpoint not yet tried.
// Without a policy, two retries stay built in (DESIGN.md 3): a reused connection that dies
// before any response byte is retried once on a fresh connection, if the request is idempotent
// and had no body (the keep-alive race); an HTTP/2 stream the server refused unprocessed
// (GOAWAY, REFUSED_STREAM) is retried once, whatever its method, if it had no body.

#include <memory>
#include <optional>

#include "proxy/event/dispatcher.h"
#include "proxy/event/timeout_list.h"
#include "proxy/http/codec.h"
#include "proxy/http/filter.h"
#include "proxy/http/retry.h"
#include "proxy/http/route_table.h"
#include "proxy/upstream/breaker.h"
#include "proxy/upstream/http1_pool.h"
#include "proxy/upstream/http2_pool.h"

namespace remora::http {

class RouterFilter final : public StreamFilter,
                           public upstream::Http2UpstreamRequest::Owner,  // a ResponseDecoder
                           public upstream::Http1Connection::Owner,
                           public DownstreamWatermarkCallbacks,
                           public FilterCallbacks::TunnelSink,
                           public event::TimeoutList::Entry {  // the route timeout
 public:
  static std::unique_ptr<StreamFilter> Create(const server::ListenerRuntime& listener);
  static const FilterFactory kFactory;

  FilterStatus DecodeHeaders(RequestHead& head, bool end_stream) override;
  FilterStatus DecodeData(buffer::Buffer& data, bool end_stream) override;
  FilterStatus DecodeTrailers(HeaderMap& trailers) override;
  void OnDestroy() override;

 private:
  void Attempt(bool force_new);
  // Picks the endpoint for the next attempt by the cluster's lb_policy and breakers, skipping
  // ones this request has tried while any is left untried; counts the attempt as in flight to
  // it. Null when the cluster breaker is open.
  const server::EndpointRuntime* PickEndpoint();
  // The attempt no longer counts as in flight to its endpoint (least_request), nor as pending;
  // a probe that ended without an outcome gives its slot back.
  void EndAttemptCount();
  // The current attempt's outcome for its endpoint's breaker (once per attempt).
  void RecordOutcome(upstream::AttemptEnd end, int status);
  void ReleasePendingSlot();
  // The route's fallback response, while the cluster breaker is open.
  void SendFallback();
  void SendRequestHead();
  RequestEncoder& encoder();
  bool UsesHttp2() const;
  // A connection or stream is there to take request bytes.
  bool UpstreamOpen() const;
  void FlushUpstream();
  // Ends the exchange on the current connection; `reusable` lets the pool keep it.
  void ReleaseConnection(bool reusable);
  // The upstream failed before or during the response. With a `kind`, the failure is the
  // attempt's own and may be retried; without, it ends the request.
  void OnUpstreamFailure(int status, absl::string_view reason, absl::string_view detail,
                         std::optional<AttemptFailure::Kind> kind);
  // Sets a retry of the failed attempt in motion, if the policy (or a built-in rule) allows one.
  bool TryRetry(const AttemptFailure& failure);
  // Lets go of the current attempt's connection or stream (closed: it is not reused).
  void AbandonAttempt();
  // After AbandonAttempt: the request goes back to waiting for a connection, its kept body in
  // pending_body_.
  void PrepareResend();
  // The response head the policy may retry on; true if it does (the head goes nowhere).
  bool RetryOnResponse(const ResponseHead& head, bool end_stream);
  void ArmPerTryTimeout();
  void OnPerTryTimeout();
  // Keeps body bytes for replay while the policy may need them.
  void KeepForReplay(const buffer::Buffer& data);
  void OnResponseComplete();
  void OnTimeout() override;
  // The caller's budget (x-remora-deadline-ms, grpc-timeout) ran out.
  void OnDeadline();
  // The budget for the next hop, in the request's headers (deadline.h).
  void SetUpstreamBudget();
  // The route's timeout runs from the end of the request to the first byte of the response.
  void StartTimeout();
  void UpdateDownstreamReading();

  // ResponseDecoder
  void OnInformational(ResponseHead& head) override;
  void OnHeaders(ResponseHead& head, bool end_stream) override;
  void OnData(buffer::Buffer& data, bool end_stream) override;
  void OnTrailers(HeaderMap& trailers) override;

  // Http1Connection::Owner
  void OnUpstreamConnected() override;
  void OnUpstreamConnectFailed(event::TcpConnection::Event event) override;
  void OnUpstreamData(buffer::Buffer& data) override;
  void OnUpstreamEndOfStream() override;
  void OnUpstreamReset() override;
  void OnUpstreamAboveHighWatermark() override;
  void OnUpstreamBelowLowWatermark() override;

  // Http2UpstreamRequest::Owner
  void OnUpstreamReady() override;
  void OnUpstreamFailed(upstream::Http2UpstreamRequest::Failure failure) override;
  void OnUpstreamQueueLimit(bool above) override;

  // DownstreamWatermarkCallbacks
  void OnDownstreamAboveHighWatermark() override;
  void OnDownstreamBelowLowWatermark() override;

  // TunnelSink: downstream bytes after a 101.
  void OnTunnelData(buffer::Buffer& data) override;
  void OnTunnelEnd() override;

  // The per-try timeout, a second TimeoutList entry beside the route timeout.
  struct PerTryTimeout final : event::TimeoutList::Entry {
    explicit PerTryTimeout(RouterFilter& r) : router(r) {}
    void OnTimeout() override { router.OnPerTryTimeout(); }
    RouterFilter& router;
  };

  const CompiledRoute* route_ = nullptr;
  std::optional<RetryState> retry_;  // routes with a retry policy
  PerTryTimeout per_try_{*this};
  buffer::Buffer replay_body_;       // every body byte received, while replayable_
  absl::Time complete_at_;           // the request's end: the route timeout runs from here
  uint64_t tried_ = 0;               // endpoints tried (bit i: endpoint i, the first 64)
  uint32_t endpoint_index_ = 0;      // of the current attempt
  bool replayable_ = false;          // replay_body_ holds the whole body so far
  bool request_trailers_ = false;    // the request has trailers (kept in pending_trailers_)
  bool abandoned_ = false;           // a retried HTTP/1 attempt, released when Dispatch returns
  bool counted_ = false;             // counted in the cluster's active requests
  bool holds_request_slot_ = false;  // one of the cluster's max_requests
  bool endpoint_counted_ = false;    // the attempt counts in its endpoint's in-flight requests
  bool outcome_pending_ = false;     // the attempt's outcome is not yet given to its breaker
  bool probe_ = false;               // the attempt is its endpoint's half-open probe
  bool circuit_open_ = false;        // no endpoint picked: the cluster breaker (else none in)
  bool holds_pending_slot_ = false;  // one of the cluster's max_pending_requests
  ResponseHead fallback_head_;
  RequestHead* request_ = nullptr;
  // An original_dst cluster's one endpoint for this request (its state keeps the worker's pool
  // of the destination alive while the request runs).
  std::unique_ptr<server::EndpointRuntime> original_dst_;
  upstream::Http1Connection* conn_ = nullptr;           // HTTP/1 upstream
  std::unique_ptr<upstream::Http2UpstreamRequest> h2_;  // HTTP/2 upstream
  absl::Time deadline_ = absl::InfiniteFuture();        // the caller's, if it sent a budget
  std::optional<event::DeadlineTimer> deadline_timer_;
  buffer::Buffer pending_body_;  // request body waiting for the connection
  HeaderMap pending_trailers_;
  uint32_t buffer_limit_ = 0;
  bool request_complete_ = false;  // the whole request has been received from downstream
  bool trailers_pending_ = false;
  bool head_sent_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool tunnel_ = false;
  bool retried_ = false;
  bool dispatching_ = false;  // inside the connection's codec Dispatch
  bool destroyed_ = false;
  bool downstream_read_disabled_ = false;  // as last told to the connection manager
  bool pending_over_limit_ = false;
  bool upstream_above_high_ = false;
};

}  // namespace remora::http
