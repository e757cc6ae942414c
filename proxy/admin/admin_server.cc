#include "proxy/admin/admin_server.h"

#include <llhttp.h>
#include <openssl/crypto.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proxy/common/log.h"
#include "proxy/event/tcp_connection.h"

namespace remora::admin {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

constexpr absl::Duration kReadTimeout = absl::Seconds(10);

}  // namespace

std::string Request::QueryParam(absl::string_view name) const {
  for (absl::string_view kv : absl::StrSplit(query, '&')) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first == name) return std::string(p.second);
  }
  return "";
}

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
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t n) {
      return Self(p)->Append(&Self(p)->url_, at, n);
    };
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto* s = Self(p);
      if (s->in_value_) {
        s->FinishHeader();
      }
      return s->Append(&s->field_, at, n);
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto* s = Self(p);
      s->in_value_ = true;
      return s->Append(&s->value_, at, n);
    };
    settings_.on_headers_complete = [](llhttp_t* p) {
      if (Self(p)->in_value_) Self(p)->FinishHeader();
      return 0;
    };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t n) {
      auto* s = Self(p);
      if (s->request_.body.size() + n > kMaxBodyBytes) {
        s->error_status_ = 413;
        return -1;
      }
      s->request_.body.append(at, n);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) {
      Self(p)->complete_ = true;
      return static_cast<int>(HPE_PAUSED);
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
    request_.trusted = conn_->is_unix();
    conn_->SetCallbacks(this);
    timer_ = server_.dispatcher_.CreateTimer([this] { Respond(Response::Text(408, "timeout\n")); });
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
    llhttp_errno_t err = llhttp_execute(&parser_, bytes.data(), bytes.size());
    if (complete_) {
      Dispatch();
    } else if (err != HPE_OK) {
      int status = error_status_ != 0 ? error_status_ : 400;
      LOG_DEBUG("admin: bad request from %s: %s", conn_->peer(), llhttp_get_error_reason(&parser_));
      Respond(Response::Text(status, absl::StrCat(Reason(status), "\n")));
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
  static Connection* Self(llhttp_t* p) { return static_cast<Connection*>(p->data); }

  int Append(std::string* to, const char* at, size_t n) {
    header_bytes_ += n;
    if (header_bytes_ > kMaxHeaderBytes) {
      error_status_ = 431;
      return -1;
    }
    to->append(at, n);
    return 0;
  }
  void FinishHeader() {
    if (absl::EqualsIgnoreCase(field_, "authorization")) request_.authorization = value_;
    field_.clear();
    value_.clear();
    in_value_ = false;
  }

  void Dispatch() {
    request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    std::pair<std::string, std::string> pq = absl::StrSplit(url_, absl::MaxSplits('?', 1));
    request_.path = pq.first;
    request_.query = pq.second;
    Respond(server_.Handle(request_));
  }

  void Respond(Response r) {
    if (responded_) return;
    responded_ = true;
    timer_->Disable();
    conn_->ReadEnable(false);
    std::string head = absl::StrCat("HTTP/1.1 ", r.status, " ", Reason(r.status),
                                    "\r\nContent-Type: ", r.content_type,
                                    "\r\nContent-Length: ", r.body.size(),
                                    "\r\nConnection: close\r\n");
    for (const auto& [k, v] : r.headers) absl::StrAppend(&head, k, ": ", v, "\r\n");
    absl::StrAppend(&head, "\r\n");
    buffer::Buffer out;
    out.Append(head);
    if (request_.method != "HEAD") out.Append(r.body);
    conn_->Write(out);
  }

  void Close() {
    timer_->Disable();
    conn_->Close(event::TcpConnection::CloseMode::kNow);
    server_.Remove(this);  // destroys this
  }

  AdminServer& server_;
  std::unique_ptr<event::TcpConnection> conn_;
  std::unique_ptr<event::Timer> timer_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  Request request_;
  std::string url_, field_, value_;
  size_t header_bytes_ = 0;
  int error_status_ = 0;
  bool in_value_ = false;
  bool complete_ = false;
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
    if (route.method != request.method &&
        !(route.method == "GET" && request.method == "HEAD")) {
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
