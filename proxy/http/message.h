#pragma once

// Request and response heads as the codecs produce and consume them, independent of the wire
// protocol: HTTP/1 fills them from llhttp, HTTP/2 will from nghttp2. Heads are reused from one
// message to the next (Clear() keeps capacity), so a keep-alive connection allocates nothing per
// request once warm.

#include <cstdint>
#include <string>

#include "proxy/http/header_map.h"

namespace remora::http {

// How a message's body is framed on an HTTP/1 wire.
enum class Framing : uint8_t {
  kNone,           // no body
  kContentLength,  // `content_length` bytes
  kChunked,
  kUntilClose,  // responses only: the body ends when the server closes
};

// What requests and responses have in common.
struct MessageHead {
  HeaderMap headers;  // end-to-end fields only: hop-by-hop fields are removed by the codec
  uint8_t version_minor = 1;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  // Requests: the client asked to switch protocols (Upgrade + Connection: upgrade) and this is
  // the Upgrade value, which is forwarded. Responses (101): the protocol switched to.
  std::string upgrade;

  void Clear();
};

struct RequestHead : MessageHead {
  std::string method;
  // The request target as it will be forwarded: origin-form path and query, or "*". An
  // absolute-form target is reduced to its path here, its authority moved to `authority`.
  std::string path;
  // The path after normalisation (DESIGN: routing and authorization use this one); see path.h.
  std::string normalized_path;
  std::string authority;  // Host, or the authority of an absolute-form target

  void Clear();
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string reason;

  void Clear();
};

// RFC 9110 9.2.2.
bool IsIdempotentMethod(absl::string_view method);

// Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade: fields that mean
// something on one connection only (RFC 9110 7.6.1, RFC 9113 8.2.2). The fields a Connection
// header names are hop-by-hop too; callers handle those.
bool IsHopByHop(absl::string_view name);

// A gRPC message (content-type application/grpc, +proto and other suffixes, parameters), not
// gRPC-Web (application/grpc-web...), which is plain HTTP/1-compatible traffic.
bool IsGrpc(const HeaderMap& headers);

}  // namespace remora::http
