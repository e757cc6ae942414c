#pragma once

// What a connection handler needs from the worker it lives on. Passed by reference; outlives every
// connection of the worker.

#include "proxy/event/uv_dispatcher.h"
#include "proxy/server/active_connection.h"
#include "proxy/stats/stats.h"

namespace remora::server {

struct WorkerContext {
  event::UvDispatcher& dispatcher;
  stats::Writer& stats;
  ConnectionList& connections;
  int index;  // 0..workers-1, for per-worker slots in shared runtime objects
};

}  // namespace remora::server
