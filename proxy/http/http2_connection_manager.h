#pragma once

// The HTTP/2 connection manager: one per downstream HTTP/2 connection (h2c with prior knowledge:
// the HTTP/1 manager hands the connection over when it opens with the client preface). Each
// request stream gets its own ActiveStream (the same filter chain as HTTP/1); many run at once.
//
// Streams end when their response is complete (the filters are destroyed then; request bytes
// still arriving are dropped), when either side resets them, or with the connection. A stream
// reset by the proxy (upstream reset after the response began, stream idle timeout) gets
// RST_STREAM; the connection goes on.
//
// Drain is the two-step GOAWAY (RFC 9113 6.8): a shutdown notice and a PING, then, once the PING
// is answered (or after a second), the final GOAWAY with the last stream id taken; the connection
// closes when its streams are done. A connection with no stream for the listener's idle_timeout
// is closed with GOAWAY too, and so is one with no stream that began a header block and did not
// finish it within request_header_timeout (slowloris over HTTP/2).

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/active_stream.h"
#include "proxy/http/http2_codec.h"
#include "proxy/network/address.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::http {

class Http2ConnectionManager final : public server::ActiveConnection,
                                     public event::TcpConnection::Callbacks,
                                     public Http2ServerCodec::ServerCallbacks {
 public:
  // Takes over `downstream` (already counted in the listener's connection stats) and the bytes
  // read from it so far, which begin with the client preface.
  static void Start(server::WorkerContext& ctx, std::shared_ptr<const server::Snapshot> snapshot,
                    const server::ListenerRuntime& listener,
                    std::unique_ptr<event::TcpConnection> downstream, buffer::Buffer& first_bytes,
                    std::unique_ptr<network::Destination> destination);
  ~Http2ConnectionManager() override;

  void StartDrain() override;
  void CloseNow() override;

  static Http2Settings SettingsFor(const config::Listener& listener);

 private:
  class Stream;
  Http2ConnectionManager(server::WorkerContext& ctx,
                         std::shared_ptr<const server::Snapshot> snapshot,
                         const server::ListenerRuntime& listener,
                         std::unique_ptr<event::TcpConnection> downstream);

  // TcpConnection::Callbacks
  void OnRead(buffer::Buffer& data) override;
  void OnEndOfStream() override;
  void OnEvent(event::TcpConnection::Event event) override;
  void OnWriteHighWatermark() override {}
  void OnWriteLowWatermark() override { SendOut(); }
  void OnFlushed() override;

  // Http2ServerCodec::ServerCallbacks
  void OnNewStream(Http2ServerCodec::ServerStream& s) override;
  void OnStreamClosed(Http2Codec::Stream& s, uint32_t error_code) override;
  void OnStreamQueueLimit(Http2Codec::Stream& s, bool above) override;
  void OnWantsSend() override;
  void OnPingAck() override;

  void Receive(buffer::Buffer& data);
  // Runs the codec's output into the socket, up to the listener's buffer limit in flight.
  void SendOut();
  void SendGoaway();
  // Starts the close when no stream is left and none can start; says whether it did.
  bool CloseIfDone();
  void UpdateIdleTimer();
  // stream_idle_timeout for every stream of the connection, with one timer.
  void ArmIdleSweep();
  void SweepIdleStreams();
  void OnTimer();
  void Finish();

  server::WorkerContext& ctx_;
  std::shared_ptr<const server::Snapshot> snapshot_;
  const server::ListenerRuntime& listener_;
  std::unique_ptr<event::TcpConnection> conn_;
  std::string peer_host_;
  std::unique_ptr<network::Destination> destination_;  // see HttpConnectionManager::Start
  buffer::Buffer out_;
  Http2ServerCodec codec_;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  std::unique_ptr<event::Timer> timer_;        // idle, drain's PING wait, close deadline
  std::unique_ptr<event::Timer> send_timer_;   // batches frames queued outside a read
  std::unique_ptr<event::Timer> sweep_timer_;  // stream idle timeouts
  bool dispatching_ = false;
  bool draining_ = false;
  bool goaway_sent_ = false;
  bool peer_eof_ = false;               // the client half-closed
  bool idle_ = false;                   // no stream, since idle_since_
  bool awaiting_header_block_ = false;  // timer_ is the header-read timeout
  absl::Time idle_since_;
  bool closing_ = false;
  bool finished_ = false;
};

}  // namespace remora::http
