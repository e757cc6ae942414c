#pragma once

// Puts TLS under a connection (tls/transport.h) the way every listener and cluster does: the
// handshake counted in the owner's TlsStats, a failure logged with its reason and the peer.

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/server/worker_context.h"
#include "proxy/stats/metrics.h"
#include "tls/context.h"

namespace remora::server {

// `owner` names the listener or cluster in the log ("listener web"); `alpn` (clients) the
// protocols to offer, in wire format (none: a TCP tunnel); a client checking its peer as a mesh
// workload also offers the mesh's mark (tls::kAlpnMesh, or tls::kAlpnTunnel for a tunnel);
// `session_key` (clients) the endpoint, whose sessions are resumed; `handshake_timeout`
// (servers) as TcpConnection takes it.
void AttachTls(WorkerContext& ctx, event::TcpConnection& conn,
               std::shared_ptr<const tls::Context> context, const stats::TlsStats& stats,
               std::string owner, absl::string_view alpn = {}, std::string session_key = {},
               absl::Duration handshake_timeout = absl::ZeroDuration());

// Counts a failed handshake by its reason in `stats` and logs it: every refusal of a TLS peer
// (by OpenSSL, or by a strict inbound listener before a handshake starts) is told this one way.
void CountHandshakeFailure(WorkerContext& ctx, const stats::TlsStats& stats,
                           absl::string_view owner, absl::string_view peer,
                           tls::HandshakeFailure reason, absl::string_view detail);

}  // namespace remora::server
