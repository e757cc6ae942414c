#include "proxy/upstream/counted_connection.h"

#include "proxy/server/tls_setup.h"
#include "proxy/upstream/slot.h"

namespace remora::upstream {

using event::TcpConnection;

bool ReserveConnectionSlot(const server::ClusterRuntime& cluster) {
  return TryReserve(cluster.state->active_connections, cluster.config->max_connections);
}

std::unique_ptr<TcpConnection> ConnectCounted(server::WorkerContext& ctx,
                                              const server::ClusterRuntime& cluster,
                                              const server::EndpointRuntime& endpoint,
                                              absl::string_view alpn) {
  auto conn = TcpConnection::Connect(
      ctx.dispatcher, reinterpret_cast<const sockaddr*>(&endpoint.address),
      cluster.config->connect_timeout,
      endpoint.bind_source ? reinterpret_cast<const sockaddr*>(&endpoint.source) : nullptr);
  if (cluster.tls != nullptr) {
    server::AttachTls(ctx, *conn, cluster.tls, cluster.tls_stats, "cluster " + cluster.config->name,
                      alpn, endpoint.address_text);
  }
  endpoint.state->active_connections.fetch_add(1, std::memory_order_relaxed);
  endpoint.state->total_connections.fetch_add(1, std::memory_order_relaxed);
  ctx.stats.Add(cluster.stats.cx_total);
  ctx.stats.AddSigned(cluster.stats.cx_active, 1);
  return conn;
}

void CloseCounted(server::WorkerContext& ctx, const stats::ClusterStats& stats,
                  ClusterState& cluster, EndpointState& endpoint, TcpConnection& conn) {
  ctx.stats.Add(stats.rx_bytes, conn.bytes_read());
  ctx.stats.Add(stats.tx_bytes, conn.bytes_written());
  ctx.stats.AddSigned(stats.cx_active, -1);
  cluster.active_connections.fetch_sub(1, std::memory_order_relaxed);
  endpoint.active_connections.fetch_sub(1, std::memory_order_relaxed);
  conn.Close(TcpConnection::CloseMode::kNow);
}

void CountConnectFailure(server::WorkerContext& ctx, const stats::ClusterStats& stats,
                         TcpConnection::Event event) {
  switch (event) {
    case TcpConnection::Event::kConnectFailed:
      ctx.stats.Add(stats.connect_refused);
      break;
    case TcpConnection::Event::kConnectTimeout:
      ctx.stats.Add(stats.connect_timeout);
      break;
    case TcpConnection::Event::kConnectLocalError:
      ctx.stats.Add(stats.connect_local);
      ctx.local_resource_pressure();
      break;
    default:
      break;
  }
}

}  // namespace remora::upstream
