#include "proxy/http/message.h"

namespace remora::http {

void MessageHead::Clear() {
  headers.Clear();
  version_minor = 1;
  framing = Framing::kNone;
  content_length = 0;
  keep_alive = true;
  upgrade.clear();
}

void RequestHead::Clear() {
  MessageHead::Clear();
  method.clear();
  path.clear();
  normalized_path.clear();
  authority.clear();
}

void ResponseHead::Clear() {
  MessageHead::Clear();
  status = 0;
  reason.clear();
}

bool IsIdempotentMethod(absl::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

bool IsHopByHop(absl::string_view name) {
  // By length first: most fields are none of these and need no compare at all.
  switch (name.size()) {
    case 2:
      return IEquals(name, "te");
    case 7:
      return IEquals(name, "upgrade");
    case 10:
      return IEquals(name, "connection") || IEquals(name, "keep-alive");
    case 16:
      return IEquals(name, "proxy-connection");
    case 17:
      return IEquals(name, "transfer-encoding");
    default:
      return false;
  }
}

bool IsGrpc(const HeaderMap& headers) {
  absl::string_view ct = headers.Get("content-type");
  constexpr absl::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size() || !IEquals(ct.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  return ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';';
}

}  // namespace remora::http
