#pragma once

// A small HTTP/1.1 server for the admin API (and the demo's sample service): one request per
// connection (answered with `Connection: close`), parsed by llhttp in strict mode, with bounded
// headers/body and a read timeout, so a stuck or hostile client cannot hold the main loop's memory.
//
// Mutating routes need `Authorization: Bearer <token>` (compared in constant time) unless the
// request arrived on the Unix socket, whose 0600 permissions already authenticate the caller. With
// no token configured, mutating routes are reachable only through the Unix socket.
//
// Runs on the main thread's dispatcher; handlers run there too.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "proxy/admin/request_parser.h"
#include "proxy/event/tcp_listener.h"
#include "proxy/event/uv_dispatcher.h"

namespace remora::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response Text(int status, std::string body);
  static Response Json(int status, std::string body);
};

class AdminServer {
 public:
  using Handler = absl::AnyInvocable<Response(const Request&)>;

  AdminServer(event::UvDispatcher& dispatcher, std::string token);
  ~AdminServer();

  void AddRoute(std::string method, std::string path, bool mutating, Handler handler);
  // Serves on a listening socket (TCP or Unix); takes ownership of `fd`.
  void Serve(int fd);
  // Stops listening and closes every open admin connection.
  void Close();

  // Routing and auth, separated from the socket for unit tests.
  Response Handle(const Request& request);

  // Connections over this are closed on accept, so admin clients cannot exhaust descriptors.
  static constexpr size_t kMaxConnections = 64;

 private:
  class Connection;
  struct Route {
    std::string method;
    std::string path;
    bool mutating;
    Handler handler;
  };
  void Accept(int fd);
  void Remove(Connection* c);

  event::UvDispatcher& dispatcher_;
  std::string token_;
  std::vector<Route> routes_;
  std::vector<std::unique_ptr<event::TcpListener>> listeners_;
  std::vector<std::unique_ptr<Connection>> connections_;
};

}  // namespace remora::admin
