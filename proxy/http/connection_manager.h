#pragma once

// The HTTP connection manager: one per downstream HTTP/1.1 connection. It runs the server codec
// over the socket, gives each request a stream with the listener's filter chain (router last),
// and writes the response the chain produces. One stream at a time: a pipelined request waits
// in the input, unparsed, until the response before it is complete.
//
// What it owns besides the chain: the forwarding-header policy per listener direction
// (docs/http.md), path normalisation before routing, the header-read (slowloris) and keep-alive
// idle timeouts, replies to malformed requests (exact status, `Connection: close`, then close),
// read backpressure (the router asks it to stop reading; a waiting pipelined backlog is bounded
// by the listener's buffer limit), WebSocket tunnels after a 101, and drain (`Connection: close`
// on the response in progress; an idle connection closes at once).

#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/codec.h"
#include "proxy/http/filter.h"
#include "proxy/http/http1_codec.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::http {

class HttpConnectionManager final : public server::ActiveConnection,
                                    public event::TcpConnection::Callbacks,
                                    public RequestDecoder,
                                    public FilterCallbacks {
 public:
  // Starts serving `downstream`. Owns itself: linked into ctx.connections, deleted (deferred)
  // when the connection ends.
  static void Start(server::WorkerContext& ctx, std::shared_ptr<const server::Snapshot> snapshot,
                    const server::ListenerRuntime& listener,
                    std::unique_ptr<event::TcpConnection> downstream);
  ~HttpConnectionManager() override;

  void StartDrain() override;
  void CloseNow() override;

  // How long a connection being closed gets to take the bytes still queued for it.
  static constexpr absl::Duration kCloseFlushTimeout = absl::Seconds(5);

 private:
  HttpConnectionManager(server::WorkerContext& ctx,
                        std::shared_ptr<const server::Snapshot> snapshot,
                        const server::ListenerRuntime& listener,
                        std::unique_ptr<event::TcpConnection> downstream);

  // TcpConnection::Callbacks
  void OnRead(buffer::Buffer& data) override;
  void OnEndOfStream() override;
  void OnEvent(event::TcpConnection::Event event) override;
  void OnWriteHighWatermark() override;
  void OnWriteLowWatermark() override;
  void OnFlushed() override;

  // RequestDecoder (from the codec)
  void OnHeaders(RequestHead& head, bool end_stream) override;
  void OnData(buffer::Buffer& data, bool end_stream) override;
  void OnTrailers(HeaderMap& trailers) override;

  // FilterCallbacks
  server::WorkerContext& worker() override { return ctx_; }
  event::Dispatcher& dispatcher() override { return ctx_.dispatcher; }
  const server::Snapshot& snapshot() override { return *snapshot_; }
  const server::ListenerRuntime& listener() override { return listener_; }
  StreamInfo& info() override { return info_; }
  RequestHead& request() override { return codec_.request(); }
  void ContinueDecoding() override;
  void ContinueEncoding() override;
  void SendLocalReply(int status, absl::string_view reason, absl::string_view detail) override;
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

  void Dispatch();
  void OnCodecError();
  // A reply written straight through the codec (no stream or filters), then close.
  void DirectReply(int status, absl::string_view reason, absl::string_view detail);
  // Fills local_reply_ (status, x-remora-reason, text type and length) and returns its body.
  buffer::Buffer BuildLocalReply(int status, absl::string_view reason, absl::string_view detail);
  void ApplyForwardingPolicy(RequestHead& head);
  void BeginStream();
  void EndStream();
  // Decode/encode iteration from filter index `from` (encode indexes count down).
  void DecodeHeadersFrom(size_t from);
  void DecodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream);
  void DecodeTrailersFrom(size_t from, HeaderMap& trailers);
  void EncodeHeadersFrom(size_t from, ResponseHead& head, bool end_stream);
  void EncodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream);
  void EncodeTrailersFrom(size_t from, HeaderMap& trailers);
  void OnResponseComplete();
  void FlushOut();
  void UpdateReading();
  void ArmTimer(absl::Duration after);
  void OnTimer();
  void CloseAfterFlush();
  void Finish(event::TcpConnection::CloseMode mode = event::TcpConnection::CloseMode::kNow);

  server::WorkerContext& ctx_;
  std::shared_ptr<const server::Snapshot> snapshot_;
  const server::ListenerRuntime& listener_;
  std::unique_ptr<event::TcpConnection> conn_;
  buffer::Buffer in_;   // read, not yet parsed
  buffer::Buffer out_;  // encoded, not yet written
  Http1ServerCodec codec_;
  std::unique_ptr<event::Timer> timer_;        // header read, idle, or close-flush deadline
  std::unique_ptr<event::Timer> flush_timer_;  // sends a response head that has no body yet

  // The stream.
  absl::InlinedVector<std::unique_ptr<StreamFilter>, 4> filters_;
  StreamInfo info_;
  ResponseHead local_reply_;
  DownstreamWatermarkCallbacks* watermark_callbacks_ = nullptr;
  TunnelSink* tunnel_sink_ = nullptr;
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
    void Reset() { *this = Held(); }
  };
  Held decode_;
  Held encode_;

  uint64_t stream_id_ = 0;  // bumped per stream: held work and encode loops check it
  bool stream_active_ = false;
  bool downstream_above_high_ = false;  // the client's write backlog is over the buffer limit
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool local_replied_ = false;
  bool tunnel_upstream_done_ = false;
  bool dispatching_ = false;
  bool redispatch_ = false;
  bool read_disabled_by_stream_ = false;
  bool peer_eof_ = false;
  bool draining_ = false;
  bool close_after_response_ = false;
  bool closing_ = false;
  bool finished_ = false;
};

}  // namespace remora::http
