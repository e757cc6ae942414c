#pragma once

// The HTTP/1.1 connection manager: one per downstream HTTP/1.1 connection. It runs the server
// codec over the socket, gives each request an ActiveStream (the listener's filter chain, router
// last), and writes the response the chain produces. One stream at a time: a pipelined request
// waits in the input, unparsed, until the response before it is complete. A connection that opens
// with the HTTP/2 client preface is handed to the HTTP/2 connection manager instead (h2c with
// prior knowledge).
//
// What it owns besides the streams: the header-read (slowloris) and keep-alive idle timeouts,
// replies to malformed requests (exact status, `Connection: close`, then close), read
// backpressure (the router asks it to stop reading; a waiting pipelined backlog is bounded by the
// listener's buffer limit), WebSocket tunnels after a 101, and drain (`Connection: close` on the
// response in progress; an idle connection closes at once).

#include <memory>

#include "proxy/event/tcp_connection.h"
#include "proxy/http/active_stream.h"
#include "proxy/http/http1_codec.h"
#include "proxy/network/address.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::http {

class HttpConnectionManager final : public server::ActiveConnection,
                                    public event::TcpConnection::Callbacks,
                                    public RequestDecoder,
                                    public StreamConnection {
 public:
  // Starts serving `downstream`. Owns itself: linked into ctx.connections, deleted (deferred)
  // when the connection ends. `destination`: where a transparent listener's connection was going
  // (its streams' StreamInfo::destination); null for a direct one.
  static void Start(server::WorkerContext& ctx, std::shared_ptr<const server::Snapshot> snapshot,
                    const server::ListenerRuntime& listener,
                    std::unique_ptr<event::TcpConnection> downstream,
                    std::unique_ptr<network::Destination> destination = nullptr);
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

  // StreamConnection
  void WriteInformational(ActiveStream& s, ResponseHead& head) override;
  void WriteHeaders(ActiveStream& s, ResponseHead& head, bool end_stream) override;
  void WriteData(ActiveStream& s, buffer::Buffer& data, bool end_stream) override;
  void WriteTrailers(ActiveStream& s, HeaderMap& trailers) override;
  void OnResponseComplete(ActiveStream& s) override;
  void ResetStream(ActiveStream& s) override;
  void SetReadDisabled(ActiveStream& s, bool disabled) override;
  void StartTunnel(ActiveStream& s, FilterCallbacks::TunnelSink* sink) override;
  void TunnelWrite(buffer::Buffer& data) override;
  void TunnelShutdown() override;

  // The connection opened with the HTTP/2 preface (or a prefix of it, so far): true when it has
  // been handed over (this manager is then gone) or more bytes are needed to tell.
  bool MaybeHandOverToHttp2();
  void Dispatch();
  void OnCodecError();
  // A reply written straight through the codec (no stream or filters), then close.
  void DirectReply(int status, absl::string_view reason, absl::string_view detail);
  void EndStream();
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
  std::string peer_host_;  // the client's address without the port
  std::unique_ptr<network::Destination> destination_;
  buffer::Buffer in_;   // read, not yet parsed
  buffer::Buffer out_;  // encoded, not yet written
  Http1ServerCodec codec_;
  std::unique_ptr<event::Timer> timer_;        // header read, idle, or close-flush deadline
  std::unique_ptr<event::Timer> flush_timer_;  // sends a response head that has no body yet

  std::unique_ptr<ActiveStream> stream_;  // the request in progress, if any
  FilterCallbacks::TunnelSink* tunnel_sink_ = nullptr;

  bool first_bytes_ = true;             // nothing has been read yet: the preface may come
  bool downstream_above_high_ = false;  // the client's write backlog is over the buffer limit
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
