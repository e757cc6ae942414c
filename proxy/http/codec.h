#pragma once

// The codec seam between the wire and the connection manager / router, shared by every protocol
// (HTTP/1 now on llhttp, HTTP/2 later on nghttp2). A codec turns bytes into decoder calls and
// encoder calls into bytes; it never touches a socket, so unit tests and fuzzers drive it with
// plain buffers.
//
// Order of decoder calls for one message: OnHeaders, then OnData zero or more times, then
// OnTrailers (which ends the message) unless an earlier call had end_stream set. Responses may be
// preceded by OnInformational (100, 103). The heads passed by reference stay valid until the
// message ends; a decoder may edit them in place (filters do).

#include "proxy/buffer/buffer.h"
#include "proxy/http/message.h"

namespace remora::http {

class RequestDecoder {
 public:
  virtual ~RequestDecoder() = default;
  virtual void OnHeaders(RequestHead& head, bool end_stream) = 0;
  // Takes what it wants of `data` (normally all of it, moved out).
  virtual void OnData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void OnTrailers(HeaderMap& trailers) = 0;
};

class ResponseDecoder {
 public:
  virtual ~ResponseDecoder() = default;
  virtual void OnInformational(ResponseHead& head) = 0;
  virtual void OnHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void OnData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void OnTrailers(HeaderMap& trailers) = 0;
};

class RequestEncoder {
 public:
  virtual ~RequestEncoder() = default;
  virtual void EncodeHeaders(const RequestHead& head, bool end_stream) = 0;
  // Moves `data` out.
  virtual void EncodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void EncodeTrailers(const HeaderMap& trailers) = 0;
};

class ResponseEncoder {
 public:
  virtual ~ResponseEncoder() = default;
  virtual void EncodeInformational(const ResponseHead& head) = 0;
  virtual void EncodeHeaders(const ResponseHead& head, bool end_stream) = 0;
  virtual void EncodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void EncodeTrailers(const HeaderMap& trailers) = 0;
};

// Limits on what a peer may send in one header block; beyond them: 431 (requests) or a malformed
// response (502).
struct HeaderLimits {
  uint32_t max_bytes = 60 * 1024;  // names, values and the request target together
  uint32_t max_count = 100;
};

}  // namespace remora::http
