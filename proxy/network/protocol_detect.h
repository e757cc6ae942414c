#pragma once

// What a client speaks, from its first bytes (transparent listeners, docs/config.md "kind").
// Client-speaks-first protocols only: a server-speaks-first one (MySQL, SMTP, ...) sends nothing
// first, and is told apart by its port before any of this runs.
//
//   kHttp2   the HTTP/2 client preface (prior knowledge, RFC 9113 3.3)
//   kHttp1   a request line's start: a method token (1 to 20 of A-Z) and a space
//   kTls     a TLS handshake record (content type 22, version 3.x); ReadClientHello then reads
//            its server name and ALPN protocols
//   kOpaque  anything else
//   kNeedMore the bytes so far are a prefix of more than one answer

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace remora::network {

enum class Protocol { kNeedMore, kHttp1, kHttp2, kTls, kOpaque };
const char* ProtocolName(Protocol p);

Protocol DetectProtocol(absl::string_view first_bytes);

// What a TLS ClientHello asks for, read without terminating TLS, from the first handshake
// record: the server name (SNI, lower-cased; empty without one) and the ALPN protocols offered,
// in the client's order (empty without the extension).
struct ClientHelloInfo {
  std::string sni;
  std::vector<std::string> alpn;
};
// kFound: `bytes` begin with a whole ClientHello record, read into `out`. kNone: they are not one
// (or it is malformed, or split over records, which is taken as asking for nothing). kNeedMore:
// the record is not all here yet.
enum class HelloResult { kNeedMore, kFound, kNone };
HelloResult ReadClientHello(absl::string_view bytes, ClientHelloInfo* out);

// Whether `sni` matches `pattern`: equal (case-insensitively), or for "*.example.com" any name
// ending in ".example.com" with at least one more label.
bool SniMatches(absl::string_view pattern, absl::string_view sni);

}  // namespace remora::network
