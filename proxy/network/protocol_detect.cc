#include "proxy/network/protocol_detect.h"

#include <algorithm>

#include "absl/strings/ascii.h"
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

namespace {

// A bounds-checked reader over the record; every Get fails once the bytes run out.
struct Reader {
  absl::string_view b;
  size_t pos = 0;
  bool ok = true;
  uint32_t Get(size_t n) {
    if (!ok || pos + n > b.size()) {
      ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
    pos += n;
    return v;
  }
  void Skip(size_t n) {
    if (!ok || pos + n > b.size()) {
      ok = false;
      return;
    }
    pos += n;
  }
};

}  // namespace

HelloResult ReadClientHello(absl::string_view bytes, ClientHelloInfo* out) {
  out->sni.clear();
  out->alpn.clear();
  if (bytes.size() < 5) return HelloResult::kNeedMore;
  if (bytes[0] != 0x16) return HelloResult::kNone;
  size_t record =
      (static_cast<unsigned char>(bytes[3]) << 8) | static_cast<unsigned char>(bytes[4]);
  if (bytes.size() < 5 + record) return HelloResult::kNeedMore;
  Reader r{bytes.substr(5, record)};
  if (r.Get(1) != 1) return HelloResult::kNone;  // not a ClientHello
  size_t length = r.Get(3);
  if (!r.ok || length > record - 4) return HelloResult::kNone;  // continues in another record
  r.Skip(2 + 32);                                               // client_version, random
  r.Skip(r.Get(1));                                             // session_id
  r.Skip(r.Get(2));                                             // cipher_suites
  r.Skip(r.Get(1));                                             // compression_methods
  if (r.ok && r.pos == r.b.size()) return HelloResult::kFound;  // no extensions at all
  size_t extensions_end = r.Get(2);
  extensions_end += r.pos;
  if (!r.ok || extensions_end > r.b.size()) return HelloResult::kNone;
  while (r.ok && r.pos + 4 <= extensions_end) {
    uint32_t type = r.Get(2);
    size_t end = r.Get(2);
    end += r.pos;
    if (!r.ok || end > extensions_end) {
      r.ok = false;  // reported below, with what was read so far dropped
      break;
    }
    if (type == 0) {  // server_name: a list of (type, name); the first host_name counts
      size_t list_end = r.Get(2);
      list_end += r.pos;
      while (r.ok && r.pos + 3 <= list_end && list_end <= end && out->sni.empty()) {
        uint32_t name_type = r.Get(1);
        size_t name_len = r.Get(2);
        if (name_type == 0 && name_len > 0 && r.ok && r.pos + name_len <= list_end) {
          out->sni = absl::AsciiStrToLower(r.b.substr(r.pos, name_len));
        }
        r.Skip(name_len);
      }
    } else if (type == 16) {  // application_layer_protocol_negotiation: a list of (len, name)
      size_t list_end = r.Get(2);
      list_end += r.pos;
      while (r.ok && r.pos + 1 <= list_end && list_end <= end) {
        size_t n = r.Get(1);
        if (n == 0 || !r.ok || r.pos + n > list_end) break;
        out->alpn.emplace_back(r.b.substr(r.pos, n));
        r.Skip(n);
      }
    }
    r.pos = end;  // whatever the extension held, the next one starts here
  }
  if (!r.ok) {
    out->sni.clear();
    out->alpn.clear();
    return HelloResult::kNone;
  }
  return HelloResult::kFound;
}

bool SniMatches(absl::string_view pattern, absl::string_view sni) {
  if (absl::StartsWith(pattern, "*.")) {
    absl::string_view suffix = pattern.substr(1);  // ".example.com"
    return sni.size() > suffix.size() && absl::EndsWithIgnoreCase(sni, suffix);
  }
  return absl::EqualsIgnoreCase(pattern, sni);
}

}  // namespace remora::network
