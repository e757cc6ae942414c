#include "proxy/http/message.h"

namespace remora::http {

void RequestHead::Clear() {
  method.clear();
  path.clear();
  normalized_path.clear();
  authority.clear();
  headers.Clear();
  version_minor = 1;
  framing = Framing::kNone;
  content_length = 0;
  keep_alive = true;
  upgrade.clear();
}

void ResponseHead::Clear() {
  status = 0;
  reason.clear();
  headers.Clear();
  version_minor = 1;
  framing = Framing::kNone;
  content_length = 0;
  keep_alive = true;
  upgrade.clear();
}

bool IsIdempotentMethod(absl::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

}  // namespace remora::http
