#pragma once

// What every pooled upstream HTTP connection (HTTP/1.1 and HTTP/2 pools alike) does to the
// shared counters, written once: the cluster-wide max_connections slot, the endpoint's active and
// total connections, the cluster's cx_* and rx/tx stats, and the reason a connect failed.

#include <memory>

#include "proxy/event/tcp_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"
#include "proxy/stats/stats.h"

namespace remora::upstream {

// Takes one of the cluster's max_connections slots (exact across workers); false, with nothing
// taken, when the cluster is full.
bool ReserveConnectionSlot(const server::ClusterRuntime& cluster);

// Connects to `endpoint` on a slot just reserved and counts the connection as open. With the
// cluster's tls, the connection originates TLS offering `alpn` (wire format), and reports
// connected once its handshake is done.
std::unique_ptr<event::TcpConnection> ConnectCounted(server::WorkerContext& ctx,
                                                     const server::ClusterRuntime& cluster,
                                                     const server::EndpointRuntime& endpoint,
                                                     absl::string_view alpn = {});

// Closes a connection made by ConnectCounted and gives back what it took.
void CloseCounted(server::WorkerContext& ctx, const stats::ClusterStats& stats,
                  ClusterState& cluster, EndpointState& endpoint, event::TcpConnection& conn);

// Counts a connect that ended in `event` (refused, timed out, or a local error, which also tells
// the worker to ease off accepting). Other events count nothing.
void CountConnectFailure(server::WorkerContext& ctx, const stats::ClusterStats& stats,
                         event::TcpConnection::Event event);

}  // namespace remora::upstream
