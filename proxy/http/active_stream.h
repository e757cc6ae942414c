#pragma once

// One request/response exchange on a downstream connection, HTTP/1 or HTTP/2: the stream's filter
// chain (the listener's filters, router last), the work held behind a filter that stopped, and
// what its filters share (StreamInfo). The connection manager of the stream's protocol creates it
// when a request head arrives, feeds it the request (Decode*), and gets the response back, after
// the encode chain, through StreamConnection.
//
// Also owned here, being the same for every protocol: path normalisation before routing, the
// forwarding-header policy of the listener's direction (docs/http.md), local replies (plain text,
// or trailers-only gRPC for a gRPC request), and the stream idle timeout.
//
// Life: End() (idempotent) tells the filters OnDestroy; the connection manager then hands the
// stream to the dispatcher's deferred delete, so callers up the stack may still test alive().

#include <memory>
#include <string>

#include "absl/container/inlined_vector.h"
#include "proxy/common/block_cache.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/transport.h"
#include "proxy/http/filter.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::http {

class ActiveStream;

// What a stream needs of the connection it arrived on.
class StreamConnection {
 public:
  virtual ~StreamConnection() = default;
  // The response after the encode chain, onto the wire.
  virtual void WriteInformational(ActiveStream& s, ResponseHead& head) = 0;
  virtual void WriteHeaders(ActiveStream& s, ResponseHead& head, bool end_stream) = 0;
  virtual void WriteData(ActiveStream& s, buffer::Buffer& data, bool end_stream) = 0;
  virtual void WriteTrailers(ActiveStream& s, HeaderMap& trailers) = 0;
  // The last of the response has been written (the request may still be arriving).
  virtual void OnResponseComplete(ActiveStream& s) = 0;
  // The stream ends abruptly: HTTP/2 resets it, HTTP/1 closes the connection.
  virtual void ResetStream(ActiveStream& s) = 0;
  // Stop (or resume) taking request bytes for this stream.
  virtual void SetReadDisabled(ActiveStream& s, bool disabled) = 0;
  // After a 101 (HTTP/1 only; an HTTP/2 connection resets the stream instead).
  virtual void StartTunnel(ActiveStream& s, FilterCallbacks::TunnelSink* sink) = 0;
  virtual void TunnelWrite(buffer::Buffer& data) = 0;
  virtual void TunnelShutdown() = 0;
};

class ActiveStream final : public FilterCallbacks,
                           public event::DeferredDeletable,
                           public mem::Cached {
 public:
  // `transport` (TLS, or null) and `destination` (a transparent listener's original
  // destination, or null) describe the downstream connection; both outlive the stream.
  ActiveStream(server::WorkerContext& ctx, const server::Snapshot& snapshot,
               const server::ListenerRuntime& listener, StreamConnection& connection,
               RequestHead& request, absl::string_view downstream_address,
               const event::Transport* transport, const network::Destination* destination);
  ~ActiveStream() override;

  // The request, from the codec. DecodeHeaders normalises the path, applies the forwarding
  // policy and runs the chain.
  void DecodeHeaders(bool end_stream);
  void DecodeData(buffer::Buffer& data, bool end_stream);
  void DecodeTrailers(HeaderMap& trailers);
  // The stream is over: filters see OnDestroy. No call reaches the connection afterwards.
  void End();

  // The downstream connection (or, for HTTP/2, this stream) stopped or resumed taking the
  // response: passed to the filter that produces it.
  void OnDownstreamAboveHighWatermark();
  void OnDownstreamBelowLowWatermark();

  // Bytes moved on the stream outside the calls above (a tunnel's): the idle timeout restarts.
  void NoteActivity() { last_activity_ = ctx_.dispatcher.Now(); }
  // The stream idle timeout. The stream keeps no timer of its own (one per request would be a
  // timer started and stopped on every exchange): its connection calls CheckIdle() when the
  // timeout may have passed, with the connection's own timer. It ends the stream if nothing
  // moved for stream_idle_timeout and says whether it did; else IdleLeft() is the time to wait.
  bool CheckIdle();
  absl::Duration IdleLeft() const {
    return listener_.config->stream_idle_timeout - (ctx_.dispatcher.Now() - last_activity_);
  }

  bool alive() const { return alive_; }
  bool request_complete() const { return request_complete_; }
  bool response_started() const { return response_started_; }
  bool response_complete() const { return response_complete_; }
  bool local_replied() const { return local_replied_; }
  // The request was answered as malformed (the connection does not carry another).
  bool malformed() const { return malformed_; }

  // FilterCallbacks
  server::WorkerContext& worker() override { return ctx_; }
  event::Dispatcher& dispatcher() override { return ctx_.dispatcher; }
  const server::Snapshot& snapshot() override { return snapshot_; }
  const server::ListenerRuntime& listener() override { return listener_; }
  StreamInfo& info() override { return info_; }
  RequestHead& request() override { return request_; }
  void ContinueDecoding() override;
  void ContinueEncoding() override;
  void SendLocalReply(int status, absl::string_view reason, absl::string_view detail,
                      ExtraHeaders extra_headers) override;
  using FilterCallbacks::SendLocalReply;
  void EncodeInformational(ResponseHead& head) override;
  void EncodeHeaders(ResponseHead& head, bool end_stream) override;
  void EncodeData(buffer::Buffer& data, bool end_stream) override;
  void EncodeTrailers(HeaderMap& trailers) override;
  void StartTunnel(TunnelSink* sink) override;
  void TunnelWrite(buffer::Buffer& data) override;
  void TunnelShutdown() override;
  void ResetStream() override;
  void SetDownstreamReadDisabled(bool disabled) override;
  void SetDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks* cb) override {
    watermark_callbacks_ = cb;
  }

  // Fills `head` as the proxy's own answer: status, x-remora-reason, a text body (returned) or,
  // for gRPC, a trailers-only response whose grpc-status follows gRPC's HTTP mapping.
  static buffer::Buffer BuildLocalReply(ResponseHead& head, bool grpc, int status,
                                        absl::string_view reason, absl::string_view detail);
  // gRPC's status for an HTTP status the proxy answers with.
  static int GrpcStatusFor(int http_status, absl::string_view reason);

 private:
  void ApplyForwardingPolicy(RequestHead& head);
  // Decode/encode iteration from filter index `from` (encode indexes count down).
  void DecodeHeadersFrom(size_t from);
  void DecodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream);
  void DecodeTrailersFrom(size_t from, HeaderMap& trailers);
  void EncodeHeadersFrom(size_t from, ResponseHead& head, bool end_stream);
  void EncodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream);
  void EncodeTrailersFrom(size_t from, HeaderMap& trailers);
  void ResponseComplete();

  server::WorkerContext& ctx_;
  const server::Snapshot& snapshot_;
  const server::ListenerRuntime& listener_;
  StreamConnection& connection_;
  RequestHead& request_;
  absl::InlinedVector<std::unique_ptr<StreamFilter>, 4> filters_;
  StreamInfo info_;
  ResponseHead local_reply_;
  DownstreamWatermarkCallbacks* watermark_callbacks_ = nullptr;
  absl::Time last_activity_;  // of the last byte moved, for the idle timeout

  // A direction held by a filter's kStop: where it stopped (index of that filter) and what waits
  // behind it, including whether the end of the message is among it.
  struct Held {
    bool active = false;
    size_t stopped_at = 0;
    bool headers = false;          // decode: the request head itself is held
    ResponseHead* head = nullptr;  // encode: the held response head
    buffer::Buffer data;
    bool end = false;
    HeaderMap* trailers = nullptr;
  };
  Held decode_;
  Held encode_;
  // Copies of a response head and trailers held by an encode filter: they live in the upstream
  // codec, whose stream may be freed (or its connection reused) before the filter continues.
  // (A held request lives in the downstream codec's stream, which outlives this one.)
  ResponseHead* KeepHead(ResponseHead& h) {
    if (&h != &kept_head_) kept_head_ = h;
    return &kept_head_;
  }
  HeaderMap* KeepTrailers(HeaderMap& t) {
    if (&t != &kept_trailers_) kept_trailers_ = t;
    return &kept_trailers_;
  }
  ResponseHead kept_head_;
  HeaderMap kept_trailers_;

  bool alive_ = true;
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool local_replied_ = false;
  bool malformed_ = false;
};

}  // namespace remora::http
