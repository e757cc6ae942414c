#include "proxy/server/tls_setup.h"

#include "proxy/common/log.h"
#include "tls/transport.h"

namespace remora::server {

void CountHandshakeFailure(WorkerContext& ctx, const stats::TlsStats& stats,
                           absl::string_view owner, absl::string_view peer,
                           tls::HandshakeFailure reason, absl::string_view detail) {
  ctx.stats.Add(stats.failure(reason));
  LOG_INFO("%s: TLS handshake with %s failed (%s): %s", owner, peer,
           tls::HandshakeFailureName(reason), detail);
}

void AttachTls(WorkerContext& ctx, event::TcpConnection& conn,
               std::shared_ptr<const tls::Context> context, const stats::TlsStats& stats,
               std::string owner, absl::string_view alpn, std::string session_key,
               absl::Duration handshake_timeout) {
  std::string offer(alpn);
  if (!context->options().server && context->options().spiffe) {
    absl::string_view mark = alpn.empty() ? tls::kAlpnTunnel : tls::kAlpnMesh;
    offer.push_back(static_cast<char>(mark.size()));
    offer.append(mark.data(), mark.size());
  }
  auto transport =
      std::make_unique<tls::TlsTransport>(std::move(context), offer, std::move(session_key));
  // The worker's context outlives every connection of the worker.
  transport->SetOnHandshakeDone(
      [&ctx, stats, owner = std::move(owner), peer = conn.peer()](const tls::TlsTransport& t) {
        if (t.failure() == tls::HandshakeFailure::kNone) {
          ctx.stats.Add(stats.handshakes);
          if (t.resumed()) ctx.stats.Add(stats.resumed);
        } else {
          CountHandshakeFailure(ctx, stats, owner, peer, t.failure(), t.failure_detail());
        }
      });
  conn.SetTransport(std::move(transport), handshake_timeout);
}

}  // namespace remora::server
