#pragma once

// The demo's stand-in for "your service": a tiny HTTP/1.1 app on its own thread and loop, so
// `remora demo` needs nothing but the binary. GET /hello and GET / answer a greeting that names the
// request count; GET /healthz answers ok.

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "proxy/admin/admin_server.h"
#include "proxy/config/config.h"
#include "proxy/event/uv_dispatcher.h"

namespace remora::demo {

class SampleService {
 public:
  // Binds `address` (port 0 picks one) and starts serving on a new thread.
  static absl::StatusOr<std::unique_ptr<SampleService>> Start(config::SocketAddress address);
  ~SampleService();  // stops and joins

  uint16_t port() const { return port_; }

 private:
  SampleService() = default;
  event::UvDispatcher dispatcher_;
  std::unique_ptr<admin::AdminServer> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  uint64_t requests_ = 0;  // loop thread only
};

}  // namespace remora::demo
