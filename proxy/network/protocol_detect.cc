#include "proxy/network/protocol_detect.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace remora::network {

namespace {

constexpr absl::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMaxMethod = 20;

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

}  // namespace

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kNeedMore:
      return "undecided";
    case Protocol::kHttp1:
      return "http1";
    case Protocol::kHttp2:
      return "http2";
    case Protocol::kTls:
      return "tls";
    case Protocol::kOpaque:
      return "tcp";
  }
  return "tcp";
}

Protocol DetectProtocol(absl::string_view b) {
  if (b.empty()) return Protocol::kNeedMore;
  // TLS: a handshake record, 0x16 0x03 0x00..0x04 (SSL 3.0 to TLS 1.3's legacy field).
  if (b[0] == 0x16) {
    if (b.size() < 3) return b.size() < 2 || b[1] == 0x03 ? Protocol::kNeedMore : Protocol::kOpaque;
    return b[1] == 0x03 && static_cast<unsigned char>(b[2]) <= 0x04 ? Protocol::kTls
                                                                    : Protocol::kOpaque;
  }
  // The HTTP/2 preface starts with "PRI ", itself a valid method token: decide on the whole.
  size_t n = std::min(b.size(), kHttp2Preface.size());
  bool preface_so_far = b.substr(0, n) == kHttp2Preface.substr(0, n);
  if (preface_so_far && b.size() >= kHttp2Preface.size()) return Protocol::kHttp2;
  // HTTP/1: METHOD SP.
  size_t i = 0;
  while (i < b.size() && i <= kMaxMethod && IsUpper(b[i])) ++i;
  if (i < b.size()) {
    if (i > 0 && i <= kMaxMethod && b[i] == ' ') {
      return preface_so_far ? Protocol::kNeedMore : Protocol::kHttp1;
    }
    return Protocol::kOpaque;
  }
  return i > kMaxMethod ? Protocol::kOpaque : Protocol::kNeedMore;
}

}  // namespace remora::network
