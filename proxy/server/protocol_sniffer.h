#pragma once

// The front of a transparent listener (kind: outbound | inbound, docs/config.md). A connection
// starts here: its original destination is read from the socket (SO_ORIGINAL_DST); if that port
// is one whose servers speak first (MySQL, SMTP, ...), it goes straight to the TCP proxy;
// otherwise the first bytes decide (network/protocol_detect.h), within `detect_timeout`:
//
//   HTTP/1.1 or HTTP/2  -> the HTTP connection manager: the listener's routes, and for what they
//                          do not take the passthrough route (router.h); only a listener with a
//                          cluster and no routes hands HTTP to the TCP proxy
//   TLS                 -> with tls_routes, the cluster of the first route matching the
//                          ClientHello's server name (SNI) and ALPN, still encrypted; else
//                          as below
//   other bytes,        -> the TCP proxy: the listener's cluster if it has one, else its
//   nothing in time        passthrough (an original_dst cluster), else closed
//
// Passthrough goes to the original destination; for inbound, to the app on 127.0.0.1 at that
// port (or app_port), from 127.0.0.6. A connection made straight to the listener has none.
//
// An inbound listener with `tls` (the mesh's mutual TLS, docs/tls.md) first terminates TLS from
// the mesh, then decides as above on the decrypted bytes; a TCP tunnel (ALPN tls::kAlpnTunnel)
// goes to the TCP proxy at once. Server-first ports wait for a ClientHello like the rest. Mode
// strict refuses anything else (plaintext: not_tls; nothing in detect_timeout: timeout; each
// counted as a handshake failure). Mode permissive takes plaintext as a listener without tls
// would, and passes TLS that does not offer the mesh's ALPN mark (the app's own) through.
//
// The bytes read to decide stay in the connection's read buffer and reach the next handler
// untouched (TcpConnection::RedeliverBuffered). Outcomes and the time spent are counted per
// listener (remora_listener_protocol_detected_total{protocol}).

#include <memory>

#include "proxy/event/tcp_connection.h"
#include "proxy/network/address.h"
#include "proxy/network/protocol_detect.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"

namespace remora::server {

class ProtocolSniffer final : public ActiveConnection, public event::TcpConnection::Callbacks {
 public:
  static void Start(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                    const ListenerRuntime& listener, std::unique_ptr<event::TcpConnection> conn,
                    const network::OriginalDestination& destination);

  void CloseNow() override;

 private:
  ProtocolSniffer(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                  const ListenerRuntime& listener, std::unique_ptr<event::TcpConnection> conn,
                  const network::OriginalDestination& destination);

  void OnRead(buffer::Buffer& data) override;
  void OnEndOfStream() override;
  void OnEvent(event::TcpConnection::Event event) override;

  // TLS on a listener with tls_routes, or in permissive mode: the ClientHello's server name and
  // ALPN pick the cluster, or say the mesh's TLS is to be terminated.
  void ReadSni(const buffer::Buffer& data);
  void OnTimer();
  // Mutual TLS on an inbound listener: the handshake starts on the bytes read so far.
  void Terminate();
  void OnHandshakeDone() override;
  // Strict mode: closes a connection that is not the mesh's TLS, counted with `reason`.
  void Refuse(tls::HandshakeFailure reason, const char* why);
  // Hands the connection on; `outcome` is the stat counted.
  void Decide(network::Protocol protocol, uint32_t outcome);
  void Finish();

  WorkerContext& ctx_;
  std::shared_ptr<const Snapshot> snapshot_;
  const ListenerRuntime& listener_;
  std::unique_ptr<event::TcpConnection> conn_;
  network::OriginalDestination destination_;
  std::unique_ptr<event::Timer> timer_;
  absl::Time started_;
  bool awaiting_sni_ = false;
  const ClusterRuntime* tls_cluster_ = nullptr;  // a TLS route's, once its SNI and ALPN matched
  // Mutual TLS on an inbound listener (a tls block), and where its handshake is.
  const bool mesh_tls_;
  const bool strict_;
  enum class Tls : uint8_t { kNone, kHandshaking, kTerminated, kTunnel } tls_ = Tls::kNone;
  bool saw_bytes_ = false;
  bool done_ = false;      // handed on (or given up)
  bool finished_ = false;  // unlinked, deletion deferred
};

}  // namespace remora::server
