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

}  // namespace remora::http
