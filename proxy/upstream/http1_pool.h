#pragma once

// Per-worker keep-alive pools of upstream HTTP/1.1 connections, one pool per endpoint.
//
// A request takes an idle connection if there is one (reused) or opens a new one; when its
// response is done it gives the connection back, and the pool keeps it idle if the exchange left
// it clean (keep-alive on both sides, nothing unread) and the endpoint has fewer than the
// cluster's max_idle_connections idle. Idle connections keep reading: a FIN, a reset or stray
// bytes from the server evict them at once, so a request is not sent into a connection the
// server has already closed (the race is narrowed, not removed: see the router's retry). Each
// idle connection is closed after the cluster's idle_connection_timeout.
//
// The cluster's max_connections counts every upstream connection of the process (busy or idle,
// TCP and HTTP alike) through ClusterState; at the limit, an idle connection of another endpoint
// is not closed to make room: the request is refused as overflow.
//
// Pools outlive snapshots: they hold the endpoint's shared state, never a snapshot's objects.

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/buffer/buffer.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/http1_codec.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::upstream {

class Http1Pool;

class Http1Connection final : public event::TcpConnection::Callbacks,
                              public event::DeferredDeletable {
 public:
  // The request using a connection. Callbacks run on the worker's loop, never re-entrantly from
  // the owner's own calls into the connection.
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnUpstreamConnected() = 0;
    virtual void OnUpstreamConnectFailed(event::TcpConnection::Event event) = 0;
    virtual void OnUpstreamData(buffer::Buffer& data) = 0;
    virtual void OnUpstreamEndOfStream() = 0;
    virtual void OnUpstreamReset() = 0;
    virtual void OnUpstreamAboveHighWatermark() = 0;
    virtual void OnUpstreamBelowLowWatermark() = 0;
  };

  ~Http1Connection() override;

  http::Http1ClientCodec& codec() { return codec_; }
  // Sends what the codec has encoded.
  void Flush();
  void ReadEnable(bool enable) { conn_->ReadEnable(enable); }
  void Shutdown() { conn_->Shutdown(); }
  bool reused() const { return reused_; }
  bool connected() const { return connected_; }
  // Bytes read from the server since the current owner took the connection.
  uint64_t response_bytes() const { return conn_->bytes_read() - read_mark_; }

  // TcpConnection::Callbacks
  void OnRead(buffer::Buffer& data) override;
  void OnEndOfStream() override;
  void OnEvent(event::TcpConnection::Event event) override;
  void OnWriteHighWatermark() override;
  void OnWriteLowWatermark() override;

 private:
  friend class Http1Pool;
  struct EndpointPool;
  Http1Connection(Http1Pool& pool, EndpointPool& ep, const server::ClusterRuntime& cluster);
  void OnIdleEvent();  // anything on an idle connection ends it

  Http1Pool& pool_;
  EndpointPool& endpoint_pool_;
  stats::ClusterStats stats_;
  std::shared_ptr<ClusterState> cluster_state_;
  buffer::Buffer out_;
  http::Http1ClientCodec codec_;
  std::unique_ptr<event::TcpConnection> conn_;
  std::unique_ptr<event::Timer> idle_timer_;
  absl::Time idle_since_;  // when it last went idle
  Owner* owner_ = nullptr;
  uint64_t read_mark_ = 0;
  bool connected_ = false;
  bool reused_ = false;
  bool closed_ = false;
};

class Http1Pool {
 public:
  explicit Http1Pool(server::WorkerContext& ctx) : ctx_(ctx) {}
  ~Http1Pool();

  // A connection to `endpoint` for `owner`: idle and ready (*reused = true; no OnUpstreamConnected
  // follows) or connecting (OnUpstreamConnected or OnUpstreamConnectFailed follows). `fresh`
  // skips the idle ones. Null when the cluster is at max_connections (counted as overflow by the
  // caller).
  Http1Connection* Acquire(const server::ClusterRuntime& cluster,
                           const server::EndpointRuntime& endpoint, Http1Connection::Owner* owner,
                           bool fresh, bool* reused);
  // The owner is done with `c`. `reusable`: the exchange ended cleanly at a message boundary.
  void Release(Http1Connection* c, bool reusable);

  // Closes every idle connection (drain, shutdown).
  void CloseIdle();

 private:
  friend class Http1Connection;
  struct EndpointKey {
    const EndpointState* state;
    template <typename H>
    friend H AbslHashValue(H h, const EndpointKey& k) {
      return H::combine(std::move(h), k.state);
    }
    bool operator==(const EndpointKey& o) const { return state == o.state; }
  };
  void Close(Http1Connection* c);
  void OnIdleTimer(Http1Connection* c);

  server::WorkerContext& ctx_;
  absl::flat_hash_map<EndpointKey, std::unique_ptr<Http1Connection::EndpointPool>> pools_;
};

struct Http1Connection::EndpointPool {
  std::shared_ptr<EndpointState> state;  // keeps the key alive
  uint32_t max_idle = 0;
  absl::Duration idle_timeout;
  std::vector<Http1Connection*> idle;  // most recently used last
  size_t total = 0;                    // busy and idle
};

}  // namespace remora::upstream
