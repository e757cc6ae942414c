#pragma once

// Per-worker pools of multiplexed HTTP/2 (h2c prior knowledge) connections to upstream endpoints.
//
// A request gets a stream on a connection of its endpoint that has room (the server's
// SETTINGS_MAX_CONCURRENT_STREAMS, assumed to be 100 until it says), else on a new connection.
// A request made while its connection is still connecting waits for it. A connection that
// receives GOAWAY takes no new streams and closes when its last stream ends; its streams above
// the GOAWAY's last-stream-id fail as refused (never processed: the router retries them, on
// another connection since this one takes no new stream). A connection with no stream for the
// cluster's idle_connection_timeout closes.
//
// Connections count towards the cluster's max_connections like every other upstream connection.
// Pools outlive snapshots: they hold the endpoint's shared state, never a snapshot's objects.

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/buffer/buffer.h"
#include "proxy/common/block_cache.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/http2_codec.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::upstream {

class Http2Pool;
class Http2UpstreamConnection;

// One request's stream. Owned by the request (the router); destroying it resets a stream that is
// still open (CANCEL).
class Http2UpstreamRequest : public mem::Cached {
 public:
  enum class Failure {
    kConnectFailure,
    kConnectTimeout,
    kRefused,  // never processed by the server (GOAWAY, REFUSED_STREAM): safe to retry
    kReset,    // reset, or the connection died, after the request went out
  };
  class Owner : public http::ResponseDecoder {
   public:
    // The stream is open: encoder() takes the request now.
    virtual void OnUpstreamReady() = 0;
    virtual void OnUpstreamFailed(Failure failure) = 0;
    // The request body queued for the server went over (true) or back under half of the limit.
    virtual void OnUpstreamQueueLimit(bool above) = 0;
  };

  ~Http2UpstreamRequest();
  // The stream is open and takes the request (false before the connection is up and after the
  // stream closed).
  bool ready() const { return stream_ != nullptr; }
  http::RequestEncoder& encoder() { return *stream_; }  // only while ready()
  // Stop or resume taking the response (the client is slow).
  void ReadDisable(bool disabled);

 private:
  friend class Http2Pool;
  friend class Http2UpstreamConnection;
  Http2UpstreamRequest(Owner& owner) : owner_(owner) {}

  Owner& owner_;
  Http2UpstreamConnection* conn_ = nullptr;
  http::Http2ClientCodec::ClientStream* stream_ = nullptr;
  bool read_disabled_ = false;
};

class Http2UpstreamConnection final : public event::TcpConnection::Callbacks,
                                      public http::Http2ClientCodec::ClientCallbacks,
                                      public event::DeferredDeletable {
 public:
  ~Http2UpstreamConnection() override;

 private:
  friend class Http2Pool;
  friend class Http2UpstreamRequest;
  struct EndpointPool;
  Http2UpstreamConnection(Http2Pool& pool, EndpointPool& ep, const server::ClusterRuntime& cluster,
                          const http::Http2Settings& settings);

  // Whether one more stream fits (connecting: against the assumed limit).
  bool HasRoom() const;
  void Attach(Http2UpstreamRequest* r);
  void OpenStream(Http2UpstreamRequest* r);
  void Detach(Http2UpstreamRequest* r);  // the request is gone
  void SendOut();
  void Fail(Http2UpstreamRequest::Failure failure);
  void UpdateIdle();

  // TcpConnection::Callbacks
  void OnRead(buffer::Buffer& data) override;
  void OnEndOfStream() override;
  void OnEvent(event::TcpConnection::Event event) override;
  void OnWriteHighWatermark() override {}
  void OnWriteLowWatermark() override { SendOut(); }
  void OnFlushed() override { SendOut(); }

  // Http2ClientCodec::ClientCallbacks
  void OnStreamClosed(http::Http2Codec::Stream& s, uint32_t error_code) override;
  void OnStreamQueueLimit(http::Http2Codec::Stream& s, bool above) override;
  void OnWantsSend() override;
  void OnGoaway(int32_t last_stream_id, uint32_t error_code) override;

  Http2Pool& pool_;
  EndpointPool& endpoint_pool_;
  stats::ClusterStats stats_;
  std::shared_ptr<ClusterState> cluster_state_;
  uint32_t buffer_limit_;
  buffer::Buffer out_;
  http::Http2ClientCodec codec_;
  std::unique_ptr<event::TcpConnection> conn_;
  std::unique_ptr<event::Timer> idle_timer_;
  std::unique_ptr<event::Timer> send_timer_;
  absl::Duration idle_timeout_;
  std::vector<Http2UpstreamRequest*> waiting_;  // until connected
  absl::flat_hash_map<http::Http2Codec::Stream*, Http2UpstreamRequest*> streams_;
  bool connected_ = false;
  bool goaway_ = false;
  bool dispatching_ = false;
  bool closed_ = false;
};

class Http2Pool {
 public:
  explicit Http2Pool(server::WorkerContext& ctx) : ctx_(ctx) {}
  ~Http2Pool();

  // A stream to `endpoint` for `owner`: OnUpstreamReady or OnUpstreamFailed follows, never from
  // inside this call. Null when a new connection is needed and the cluster is at max_connections
  // (the caller counts the overflow). When the connection is up already, the request is ready at
  // once (ready() is true and no OnUpstreamReady follows).
  std::unique_ptr<Http2UpstreamRequest> Request(const server::ClusterRuntime& cluster,
                                                const server::EndpointRuntime& endpoint,
                                                Http2UpstreamRequest::Owner& owner);

  // Closes connections without streams, and makes busy ones take no new stream (drain).
  void CloseIdle();

 private:
  friend class Http2UpstreamConnection;
  void Close(Http2UpstreamConnection* c);

  server::WorkerContext& ctx_;
  absl::flat_hash_map<const EndpointState*, std::unique_ptr<Http2UpstreamConnection::EndpointPool>>
      pools_;
};

struct Http2UpstreamConnection::EndpointPool {
  std::shared_ptr<EndpointState> state;  // keeps the key alive
  std::vector<Http2UpstreamConnection*> conns;
};

}  // namespace remora::upstream
