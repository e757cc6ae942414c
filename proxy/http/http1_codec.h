#pragma once

// HTTP/1.1 codecs on llhttp (strict mode) plus the checks llhttp leaves to its user (DESIGN.md
// build notes): obs-fold, a missing or repeated Host, a version other than 1.x, Transfer-Encoding
// on HTTP/1.0, header limits counted as the bytes arrive, and bodiless responses to HEAD.
//
// Both codecs parse in place: body bytes reach the decoder as slices of the read buffer (no copy);
// header fields are copied once into the head's HeaderMap. Hop-by-hop fields (Connection, the
// fields it names, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade) and the framing
// fields are taken out of the head's headers and described by its framing/keep_alive/upgrade
// members instead; the encoders write framing from those.
//
// One message at a time: after a message ends the parser pauses (kMessageComplete) and the bytes
// after it stay in the input until Resume(), which is how pipelined requests wait their turn.
//
// Decoder calls are made from inside Dispatch(). A decoder must not destroy the codec from such a
// call (owners defer deletion); it may call Stop() to have Dispatch return kStopped at once.

#include <llhttp.h>

#include <cstdint>
#include <string>

#include "proxy/buffer/buffer.h"
#include "proxy/http/codec.h"

namespace remora::http {

enum class DispatchResult {
  kNeedMore,         // every byte consumed; the message goes on
  kMessageComplete,  // a message ended; Resume() before dispatching more
  kUpgrade,          // the request/response switched protocols; the rest of the input is not HTTP
  kStopped,          // the decoder called Stop()
  kError,            // malformed input; see error_status() / error_detail()
};

class Http1Parser {
 public:
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;
  virtual ~Http1Parser() = default;

  // Parses what it can of `in`, draining what it consumed.
  DispatchResult Dispatch(buffer::Buffer& in);
  // Allows the next message after kMessageComplete (or, after kUpgrade, goes back to parsing
  // HTTP: the upgrade was refused). Called from a decoder callback (the message was answered
  // before it was fully parsed), it takes effect when the message ends.
  void Resume();
  void Stop() { stopped_ = true; }
  // The status a server answers a malformed message with (400, 431, 505, ...).
  int error_status() const { return error_status_; }
  const std::string& error_detail() const { return error_detail_; }
  // Some message bytes have been parsed since the last message ended.
  bool message_started() const { return message_started_; }

 protected:
  Http1Parser(llhttp_type_t type, HeaderLimits limits);
  // Returns 0, 1 (no body) or -1 after Fail().
  virtual int OnHeadersComplete() = 0;
  virtual void DeliverData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void DeliverTrailers(HeaderMap& trailers) = 0;
  virtual HeaderMap& head_headers() = 0;
  virtual void OnMessageBegin() = 0;
  // The message just parsed was an interim response (1xx other than 101).
  virtual bool InterimMessage() const { return false; }
  int Fail(int status, std::string detail);
  // Whether a message so framed ends with its head (then end_stream goes with the head and no
  // empty data call follows). Remembered for the message's end.
  bool EndsAtHeaders(const MessageHead& head);
  // Moves hop-by-hop and framing fields out of `headers`; returns the Connection tokens seen.
  struct ConnectionTokens {
    bool close = false;
    bool keep_alive = false;
    bool upgrade = false;
  };
  ConnectionTokens StripHopByHop(HeaderMap& headers);

  llhttp_t parser_;
  HeaderLimits limits_;
  bool headers_done_ = false;

 private:
  static Http1Parser* Self(llhttp_t* p) { return static_cast<Http1Parser*>(p->data); }
  static const llhttp_settings_t* Settings();
  int CountBytes(size_t n);
  int OnHeaderValuePiece(const char* at, size_t n);

  const buffer::Slice* current_ = nullptr;  // the slice llhttp is parsing, during Dispatch
  buffer::Buffer body_;                     // body sub-slices not yet delivered
  HeaderMap trailers_;
  size_t header_bytes_ = 0;
  size_t header_count_ = 0;
  int error_status_ = 0;
  std::string error_detail_;
  bool message_started_ = false;
  bool ended_at_headers_ = false;
  bool paused_ = false;
  bool stopped_ = false;
  bool in_execute_ = false;
  uint64_t consumed_ = 0;      // input bytes parsed before the current slice
  uint64_t value_end_ = 0;     // input offset just past the last header value piece
  bool value_open_ = false;    // a header value has begun and not ended
  bool resume_early_ = false;  // Resume() came while the message was still being parsed
};

// The server side: parses requests, encodes responses.
class Http1ServerCodec final : public Http1Parser, public ResponseEncoder {
 public:
  // Encoded bytes are appended to `out`; the owner writes them to the socket.
  Http1ServerCodec(HeaderLimits limits, buffer::Buffer& out);

  // The decoder of the next request; set before Dispatch.
  void set_decoder(RequestDecoder* decoder) { decoder_ = decoder; }
  RequestHead& request() { return request_; }

  // ResponseEncoder. EncodeHeaders frames the body for this client: content-length as given,
  // chunked for an HTTP/1.1 client otherwise, until-close for an HTTP/1.0 client. `Connection:
  // close` is written when keep_alive is false in the head or the request asked for it.
  void EncodeInformational(const ResponseHead& head) override;
  void EncodeHeaders(const ResponseHead& head, bool end_stream) override;
  void EncodeData(buffer::Buffer& data, bool end_stream) override;
  void EncodeTrailers(const HeaderMap& trailers) override;

  // Whether the connection may carry another request after the response being encoded.
  bool response_keeps_alive() const { return response_keep_alive_; }

 private:
  int OnHeadersComplete() override;
  void DeliverData(buffer::Buffer& data, bool end_stream) override;
  void DeliverTrailers(HeaderMap& trailers) override;
  HeaderMap& head_headers() override { return request_.headers; }
  void OnMessageBegin() override;

  buffer::Buffer& out_;
  RequestDecoder* decoder_ = nullptr;
  RequestHead request_;
  std::string scratch_;
  bool response_chunked_ = false;
  bool response_bodyless_ = false;  // HEAD, 1xx, 204, 304: EncodeData drops what it is given
  bool response_keep_alive_ = true;
};

// The client side: encodes requests, parses responses.
class Http1ClientCodec final : public Http1Parser, public RequestEncoder {
 public:
  Http1ClientCodec(HeaderLimits limits, buffer::Buffer& out);

  void set_decoder(ResponseDecoder* decoder) { decoder_ = decoder; }
  // The upstream closed its side: a body read until close ends here. Returns false if a
  // response was cut short (or none had begun).
  bool OnEndOfStream();

  // RequestEncoder. Requests are always sent as HTTP/1.1 with keep-alive.
  void EncodeHeaders(const RequestHead& head, bool end_stream) override;
  void EncodeData(buffer::Buffer& data, bool end_stream) override;
  void EncodeTrailers(const HeaderMap& trailers) override;

  ResponseHead& response() { return response_; }
  // The response allows the connection to be reused.
  bool keep_alive() const { return response_.keep_alive; }

 private:
  int OnHeadersComplete() override;
  void DeliverData(buffer::Buffer& data, bool end_stream) override;
  void DeliverTrailers(HeaderMap& trailers) override;
  HeaderMap& head_headers() override { return response_.headers; }
  void OnMessageBegin() override;
  bool InterimMessage() const override { return informational_; }

  buffer::Buffer& out_;
  ResponseDecoder* decoder_ = nullptr;
  ResponseHead response_;
  std::string scratch_;
  bool request_is_head_ = false;
  bool request_upgrade_ = false;
  bool request_chunked_ = false;
  bool informational_ = false;  // the message being parsed is a 1xx
};

}  // namespace remora::http
