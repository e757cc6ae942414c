#include "proxy/admin/admin_server.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/status.h"

namespace remora::admin {
namespace {

// A client gets this long to send its request, and then as long again to take the answer: a
// client that never reads a large /metrics must not hold its connection and buffers forever.
constexpr absl::Duration kReadTimeout = absl::Seconds(10);
constexpr absl::Duration kWriteTimeout = absl::Seconds(10);

}  // namespace

Response Response::Text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// One admin connection: parse one request, answer, close once the answer is flushed.
class AdminServer::Connection final : public event::TcpConnection::Callbacks {
 public:
  Connection(AdminServer& server, std::unique_ptr<event::TcpConnection> conn)
      : server_(server), conn_(std::move(conn)) {
    parser_.request().trusted = conn_->is_unix();
    conn_->SetCallbacks(this);
    timer_ = server_.dispatcher_.CreateTimer([this] {
      if (responded_) {
        Close();  // destroys this
      } else {
        Respond(Response::Text(408, "timeout\n"));
      }
    });
    timer_->Enable(kReadTimeout);
    conn_->ReadEnable(true);
  }

  void OnRead(buffer::Buffer& data) override {
    if (responded_) {
      data.Clear();
      return;
    }
    std::string bytes = data.ToString();  // admin traffic is tiny; the data path never does this
    data.Clear();
    switch (parser_.Feed(bytes)) {
      case RequestParser::State::kComplete:
        Respond(server_.Handle(parser_.request()));
        break;
      case RequestParser::State::kError: {
        int status = parser_.error_status();
        LOG_DEBUG("admin: bad request from %s: %s", conn_->peer(), parser_.error_reason());
        Respond(Response::Text(status, absl::StrCat(http::StatusText(status), "\n")));
        break;
      }
      case RequestParser::State::kIncomplete:
        break;
    }
  }
  void OnEndOfStream() override {
    if (!responded_) Close();
  }
  void OnEvent(event::TcpConnection::Event) override { Close(); }
  void OnFlushed() override {
    if (responded_) Close();
  }

 private:
  // May destroy this: callers return right after.
  void Respond(Response r) {
    if (responded_) return;
    responded_ = true;
    timer_->Enable(kWriteTimeout);
    conn_->ReadEnable(false);
    std::string head =
        absl::StrCat("HTTP/1.1 ", r.status, " ", http::StatusText(r.status),
                     "\r\nContent-Type: ", r.content_type, "\r\nContent-Length: ", r.body.size(),
                     "\r\nConnection: close\r\n");
    for (const auto& [k, v] : r.headers) absl::StrAppend(&head, k, ": ", v, "\r\n");
    absl::StrAppend(&head, "\r\n");
    buffer::Buffer out;
    out.Append(head);
    if (parser_.request().method != "HEAD") out.Append(r.body);
    conn_->Write(out);
    // Taken whole by the kernel: done now. Otherwise OnFlushed closes once the rest is out.
    if (conn_->write_backlog() == 0) Close();  // destroys this
  }

  void Close() {
    timer_->Disable();
    conn_->Close(event::TcpConnection::CloseMode::kNow);
    server_.Remove(this);  // destroys this
  }

  AdminServer& server_;
  std::unique_ptr<event::TcpConnection> conn_;
  std::unique_ptr<event::Timer> timer_;
  RequestParser parser_;
  bool responded_ = false;
};

AdminServer::AdminServer(event::UvDispatcher& dispatcher, std::string token)
    : dispatcher_(dispatcher), token_(std::move(token)) {}

AdminServer::~AdminServer() { Close(); }

void AdminServer::AddRoute(std::string method, std::string path, bool mutating, Handler handler) {
  routes_.push_back(Route{std::move(method), std::move(path), mutating, std::move(handler)});
}

void AdminServer::Serve(int fd) {
  listeners_.push_back(
      std::make_unique<event::TcpListener>(dispatcher_, fd, [this](int cfd) { Accept(cfd); }));
}

void AdminServer::Accept(int fd) {
  if (connections_.size() >= kMaxConnections) {
    // The admin API shares the process's descriptors with the data path: never let it take many.
    LOG_DEBUG("admin: %d connections open; refusing another", connections_.size());
    ::close(fd);
    return;
  }
  auto conn = event::TcpConnection::Adopt(dispatcher_, fd);
  if (conn == nullptr) return;
  connections_.push_back(std::make_unique<Connection>(*this, std::move(conn)));
}

void AdminServer::Remove(Connection* c) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [c](const auto& p) { return p.get() == c; });
  if (it == connections_.end()) return;
  // The connection is on the stack (this runs from its callback): free it at the end of the turn.
  struct Holder : event::DeferredDeletable {
    std::unique_ptr<Connection> c;
  };
  auto holder = std::make_unique<Holder>();
  holder->c = std::move(*it);
  connections_.erase(it);
  dispatcher_.DeferredDelete(std::move(holder));
}

void AdminServer::Close() {
  listeners_.clear();
  connections_.clear();
}

Response AdminServer::Handle(const Request& request) {
  bool path_found = false;
  std::string allow;
  for (Route& route : routes_) {
    if (route.path != request.path) continue;
    path_found = true;
    if (route.method != request.method && !(route.method == "GET" && request.method == "HEAD")) {
      absl::StrAppend(&allow, allow.empty() ? "" : ", ", route.method);
      continue;
    }
    if (route.mutating && !request.trusted) {
      bool ok = false;
      constexpr absl::string_view kBearer = "Bearer ";
      if (!token_.empty() && absl::StartsWith(request.authorization, kBearer)) {
        absl::string_view given = absl::string_view(request.authorization).substr(kBearer.size());
        ok = given.size() == token_.size() &&
             CRYPTO_memcmp(given.data(), token_.data(), token_.size()) == 0;
      }
      if (!ok) {
        Response r = Response::Text(
            401, token_.empty() ? "unauthorized: no admin token is configured; use the admin "
                                  "unix socket\n"
                                : "unauthorized: missing or wrong bearer token\n");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
    }
    return route.handler(request);
  }
  if (path_found) {
    Response r = Response::Text(405, "method not allowed\n");
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  return Response::Text(404, "not found\n");
}

}  // namespace remora::admin
