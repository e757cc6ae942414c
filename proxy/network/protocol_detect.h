#pragma once

// What a client speaks, from its first bytes (transparent listeners, docs/config.md "kind").
// Client-speaks-first protocols only: a server-speaks-first one (MySQL, SMTP, ...) sends nothing
// first, and is told apart by its port before any of this runs.
//
//   kHttp2   the HTTP/2 client preface (prior knowledge, RFC 9113 3.3)
//   kHttp1   a request line's start: a method token (1 to 20 of A-Z) and a space
//   kTls     a TLS handshake record (content type 22, version 3.x) — SNI and ALPN come later
//   kOpaque  anything else
//   kNeedMore the bytes so far are a prefix of more than one answer

#include <string>

#include "absl/strings/string_view.h"

namespace remora::network {

enum class Protocol { kNeedMore, kHttp1, kHttp2, kTls, kOpaque };
const char* ProtocolName(Protocol p);

Protocol DetectProtocol(absl::string_view first_bytes);

// The server name (SNI) a TLS ClientHello asks for, read without terminating TLS, from the first
// handshake record (a ClientHello split over records is taken as having none).
enum class SniResult { kNeedMore, kFound, kNone };
SniResult ReadClientHelloSni(absl::string_view bytes, std::string* sni);

// Whether `sni` matches `pattern`: equal (case-insensitively), or for "*.example.com" any name
// ending in ".example.com" with at least one more label.
bool SniMatches(absl::string_view pattern, absl::string_view sni);

}  // namespace remora::network
