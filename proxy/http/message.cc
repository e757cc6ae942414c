#include "proxy/http/message.h"

#include "absl/strings/match.h"

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
  constexpr absl::string_view kHopByHop[] = {"connection", "keep-alive",        "proxy-connection",
                                             "te",         "transfer-encoding", "upgrade"};
  for (absl::string_view h : kHopByHop) {
    if (absl::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

bool IsGrpc(const HeaderMap& headers) {
  absl::string_view ct = headers.Get("content-type");
  constexpr absl::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size() || !absl::EqualsIgnoreCase(ct.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  return ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';';
}

}  // namespace remora::http
