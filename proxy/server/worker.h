#pragma once

// A worker thread: its own event loop, its own SO_REUSEPORT listening sockets (created and bound by
// the main thread, handed over here), and every connection accepted on them for their whole life.
// The main thread talks to it only by posting closures (the public methods below do that); the data
// path takes no lock.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "proxy/event/tcp_listener.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/server/active_connection.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker_context.h"
#include "proxy/upstream/http1_pool.h"
#include "proxy/upstream/http2_pool.h"
#include "proxy/upstream/original_dst.h"

namespace remora::server {

// A listening socket for one listener on one worker.
struct ListenerSocket {
  std::string listener;  // name
  int fd;
};

class Worker {
 public:
  Worker(int index, stats::Store& stats);
  ~Worker();  // joins the thread if still running

  void Start();

  // Main thread: the worker switches to `snapshot` for new connections; opens `added` sockets
  // (taking ownership) and closes the listeners named in `removed`. Existing connections keep the
  // snapshot they started with.
  void ApplySnapshot(std::shared_ptr<const Snapshot> snapshot, std::vector<ListenerSocket> added,
                     std::vector<std::string> removed);
  // Main thread: close every listening socket and tell connections to drain.
  void StartDrain();
  // Main thread: close every connection now.
  void CloseAll();
  // Main thread: stop the loop and join.
  void Stop();

  // Any thread: connections open on this worker (for drain).
  size_t active_connections() const { return connections_.size(); }
  // Any thread: the worker has closed its listening sockets for the drain (it does so on its own
  // loop, shortly after StartDrain), so no connection can arrive any more.
  bool listeners_closed() const { return listeners_closed_.load(std::memory_order_acquire); }

 private:
  struct ListenerSlot {
    std::string name;
    std::unique_ptr<event::TcpListener> listener;
    const ListenerRuntime* runtime = nullptr;  // in snapshot_
  };
  void OnAccept(ListenerSlot* slot, int fd);

  static constexpr absl::Duration kSlabTrimInterval = absl::Seconds(5);

  event::UvDispatcher dispatcher_;
  std::unique_ptr<event::Timer> trim_timer_;
  std::atomic<bool> listeners_closed_{false};
  ConnectionList connections_;
  WorkerContext ctx_;
  std::unique_ptr<upstream::Http1Pool> http1_pool_;  // created and destroyed on the thread
  std::unique_ptr<upstream::Http2Pool> http2_pool_;
  upstream::OriginalDstEndpoints original_dst_;  // used on the thread only
  std::unique_ptr<event::TimeoutLists> timeouts_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<std::unique_ptr<ListenerSlot>> listeners_;
  std::thread thread_;
  bool draining_ = false;
};

}  // namespace remora::server
