#pragma once

// The L4 data path: one downstream connection relayed byte for byte to one endpoint of the
// listener's cluster (round robin per worker), with backpressure both ways (a side whose write
// backlog passes the listener's buffer limit stops the other side's reads), half-close in both
// directions, and the cluster's max_connections enforced before connecting.
//
// Life: accepted -> connecting (the client is not read yet; its bytes wait in the kernel) ->
// relaying -> closed, once both sides sent FIN and everything is flushed, or once one side failed
// and the other has flushed (within kFailureFlushTimeout). A connect refused or timed out closes
// the downstream without data; a connect this process could not start (out of descriptors) is
// retried every kLocalRetryDelay until connect_timeout has passed since the accept.

#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/network/address.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::tcp {

class TcpProxySession final : public server::ActiveConnection {
 public:
  // Starts proxying `downstream` to the listener's cluster; `cluster` (non-null) replaces it (a
  // TLS route's, a passthrough). An original_dst cluster connects to `destination` (null: a
  // direct connection, which is closed, as is one with no cluster at all). The session owns
  // itself: it is linked into ctx.connections and deletes itself (deferred) when done. Bytes
  // already read from `downstream` and left in its buffer (a protocol sniffer's) go upstream
  // once connected.
  static void Start(server::WorkerContext& ctx, std::shared_ptr<const server::Snapshot> snapshot,
                    const server::ListenerRuntime& listener,
                    std::unique_ptr<event::TcpConnection> downstream,
                    const network::Destination* destination = nullptr,
                    const server::ClusterRuntime* cluster = nullptr);

  void CloseNow() override;
  ~TcpProxySession() override;

  // After one side resets, how long the other side gets to take the bytes still queued for it.
  static constexpr absl::Duration kFailureFlushTimeout = absl::Seconds(1);
  // When this process cannot open the upstream socket (EMFILE, ...), the client waits and the
  // connect is retried this often, within the cluster's connect_timeout.
  static constexpr absl::Duration kLocalRetryDelay = absl::Milliseconds(100);

 private:
  struct Side final : event::TcpConnection::Callbacks {
    TcpProxySession* session;
    Side* other;
    std::unique_ptr<event::TcpConnection> conn;
    bool is_upstream;
    bool eof = false;        // this side sent FIN
    bool connected = false;  // upstream: the connect (and its handshake) succeeded
    bool failed = false;     // this side's connection is gone (reset, connect failure)

    void OnRead(buffer::Buffer& data) override;
    void OnEndOfStream() override;
    void OnEvent(event::TcpConnection::Event event) override;
    void OnHandshakeDone() override;
    void OnWriteHighWatermark() override;
    void OnWriteLowWatermark() override;
    void OnFlushed() override;
  };

  TcpProxySession(server::WorkerContext& ctx, std::shared_ptr<const server::Snapshot> snapshot,
                  const server::ListenerRuntime& listener);
  void Connect();
  void ConnectDirect();  // to destination_, on an original_dst cluster
  void MaybeFinish();
  void ArmFlushTimer();
  void ScheduleLocalRetry();
  // The connect succeeded (0) or failed (FailureClass bits), for the endpoint's breaker.
  void RecordConnectOutcome(uint32_t failure_class);
  void ReleaseUpstreamSlot();
  void Finish();

  server::WorkerContext& ctx_;
  std::shared_ptr<const server::Snapshot> snapshot_;
  const server::ListenerRuntime& listener_;
  // Null: nowhere to go (closed). An original_dst cluster: destination_.
  const server::ClusterRuntime* cluster_;
  std::optional<network::Destination> destination_;
  const server::EndpointRuntime* endpoint_ = nullptr;
  uint32_t endpoint_index_ = 0;
  bool awaiting_handshake_ = false;  // a TLS client's handshake comes before the upstream
  bool outcome_pending_ = false;     // the connect's outcome is not yet given to the breaker
  bool probe_ = false;               // the connect is its endpoint's half-open probe
  Side down_;
  Side up_;
  std::unique_ptr<event::Timer> flush_timer_;
  std::unique_ptr<event::Timer> retry_timer_;
  absl::Time accepted_at_;
  bool holds_cluster_slot_ = false;
  bool finished_ = false;
};

}  // namespace remora::tcp
