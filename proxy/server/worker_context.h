#pragma once

// What a connection handler needs from the worker it lives on. Passed by reference; outlives every
// connection of the worker.

#include "absl/functional/any_invocable.h"
#include "proxy/event/timeout_list.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/server/active_connection.h"
#include "proxy/stats/stats.h"

namespace remora::upstream {
class Http1Pool;
class Http2Pool;
class OriginalDstEndpoints;
}  // namespace remora::upstream

namespace remora::server {

struct WorkerContext {
  event::UvDispatcher& dispatcher;
  stats::Writer& stats;
  ConnectionList& connections;
  int index;  // 0..workers-1, for per-worker slots in shared runtime objects
  // The worker drains: a handler started now (a connection a protocol sniffer hands on) drains
  // from its start, since Worker::StartDrain reached only the connections it had then.
  bool draining = false;
  upstream::Http1Pool* http1_pool = nullptr;  // this worker's keep-alive pools
  upstream::Http2Pool* http2_pool = nullptr;  // this worker's multiplexed HTTP/2 connections
  upstream::OriginalDstEndpoints* original_dst = nullptr;  // original_dst clusters' endpoints
  event::TimeoutLists* timeouts = nullptr;                 // per-request deadlines (route timeouts)
  // A handler could not open a socket (out of descriptors or ports): the worker pauses accepting,
  // so connections wait in the kernel's backlog rather than being accepted only to be closed.
  absl::AnyInvocable<void()> local_resource_pressure = [] {};
};

}  // namespace remora::server
