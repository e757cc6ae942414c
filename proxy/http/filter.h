#pragma once

// The HTTP filter interface (DESIGN.md 2): every L7 feature is a filter on a stream's chain.
// Requests run the chain in order (decode), responses in reverse (encode). A filter returns
// kContinue to pass the message on, or kStop to hold it: the chain then buffers what arrives for
// the held direction until the filter calls ContinueDecoding()/ContinueEncoding() (from any later
// callback or timer: async continue) or answers with SendLocalReply(). The last filter of a chain
// is the router, which never continues: it sends the request upstream and feeds the response
// back through the FilterCallbacks' Encode* calls.
//
// Life: a filter is created per stream by its factory, sees OnDestroy() when the stream ends
// (however it ends), and is freed after the current callback returns. Per-stream state lives in
// the filter object itself.

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxy/buffer/buffer.h"
#include "proxy/common/block_cache.h"
#include "proxy/event/dispatcher.h"
#include "proxy/http/message.h"

namespace remora::network {
struct Destination;
}
namespace remora::http {
struct CompiledRoute;
}

namespace remora::server {
struct ListenerRuntime;
struct Snapshot;
struct WorkerContext;
}  // namespace remora::server

namespace remora::http {

enum class FilterStatus { kContinue, kStop };

// Facts about one request shared by its filters (and, later, the access log).
struct StreamInfo {
  absl::Time start;
  std::string downstream_address;  // the client's ip (no port)
  // Why the proxy answered or failed the request itself (x-remora-reason), empty otherwise.
  absl::string_view reason;
  int response_status = 0;
  // Upstream attempts made (x-remora-attempts); 0 = not reported (no retry policy, one attempt).
  uint32_t upstream_attempts = 0;
  bool downstream_http2 = false;  // the request arrived over HTTP/2
  bool grpc = false;              // a gRPC request (IsGrpc: not gRPC-Web)
  // Transparent listeners: where the connection was going (an original_dst cluster's target);
  // null for a connection made straight to the listener. Owned by the connection manager.
  const network::Destination* destination = nullptr;
  // The request came over TLS; and the client's verified SPIFFE ID under mutual TLS, and ours
  // (empty if none). Owned by the connection's transport.
  bool downstream_tls = false;
  absl::string_view peer_identity;
  absl::string_view local_identity;
  // The route the request takes, matched once on the request as it arrived (path normalised,
  // forwarding headers applied), before any filter: authorization, rate limits and the router
  // all judge the same route. The listener's passthrough route if none matches and the
  // connection has an original destination; null if nothing takes it.
  const CompiledRoute* route = nullptr;
};

// Told about the downstream connection's write backlog, so a filter that produces the response
// (the router) stops reading its source while the client is slow.
class DownstreamWatermarkCallbacks {
 public:
  virtual ~DownstreamWatermarkCallbacks() = default;
  virtual void OnDownstreamAboveHighWatermark() = 0;
  virtual void OnDownstreamBelowLowWatermark() = 0;
};

class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  virtual server::WorkerContext& worker() = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual const server::Snapshot& snapshot() = 0;
  virtual const server::ListenerRuntime& listener() = 0;
  virtual StreamInfo& info() = 0;
  virtual RequestHead& request() = 0;

  // Resumes a held direction after the filter that returned kStop.
  virtual void ContinueDecoding() = 0;
  virtual void ContinueEncoding() = 0;
  // Answers the request from the proxy: `status`, an `x-remora-reason: reason` field, any
  // `extra_headers` and a short text body (gRPC: a trailers-only reply with those headers).
  // Decoding stops; request bytes still arriving are dropped. If the response has already begun,
  // the stream is reset instead.
  using ExtraHeaders = absl::Span<const std::pair<absl::string_view, absl::string_view>>;
  virtual void SendLocalReply(int status, absl::string_view reason, absl::string_view detail,
                              ExtraHeaders extra_headers) = 0;
  void SendLocalReply(int status, absl::string_view reason, absl::string_view detail) {
    SendLocalReply(status, reason, detail, {});
  }

  // Terminal filter only: the response, into the encode chain.
  virtual void EncodeInformational(ResponseHead& head) = 0;
  virtual void EncodeHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void EncodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void EncodeTrailers(HeaderMap& trailers) = 0;
  // Terminal filter only: the upstream accepted an upgrade (101 already encoded); from now on raw
  // bytes flow both ways. Downstream bytes arrive through `sink`, upstream bytes go back through
  // TunnelWrite.
  class TunnelSink {
   public:
    virtual ~TunnelSink() = default;
    virtual void OnTunnelData(buffer::Buffer& data) = 0;
    virtual void OnTunnelEnd() = 0;  // the client sent FIN
  };
  virtual void StartTunnel(TunnelSink* sink) = 0;
  virtual void TunnelWrite(buffer::Buffer& data) = 0;
  virtual void TunnelShutdown() = 0;
  // Ends the stream abruptly: HTTP/2 resets it; HTTP/1, having no stream reset, closes the
  // connection.
  virtual void ResetStream() = 0;

  // Backpressure: the request's destination is full (or not connected yet), so stop reading the
  // client; and be told when the client stops taking the response.
  virtual void SetDownstreamReadDisabled(bool disabled) = 0;
  virtual void SetDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks* cb) = 0;
};

class StreamFilter : public event::DeferredDeletable, public mem::Cached {
 public:
  void set_callbacks(FilterCallbacks* cb) { callbacks_ = cb; }

  virtual FilterStatus DecodeHeaders(RequestHead&, bool /*end_stream*/) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus DecodeData(buffer::Buffer&, bool /*end_stream*/) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus DecodeTrailers(HeaderMap&) { return FilterStatus::kContinue; }
  virtual FilterStatus EncodeHeaders(ResponseHead&, bool /*end_stream*/) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus EncodeData(buffer::Buffer&, bool /*end_stream*/) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus EncodeTrailers(HeaderMap&) { return FilterStatus::kContinue; }
  // The stream is over (complete, reset or the connection closed). No callback follows.
  virtual void OnDestroy() {}

 protected:
  FilterCallbacks* callbacks_ = nullptr;
};

// How a filter is made for each stream. `settings` is the listener's (see config.h).
struct FilterFactory {
  const char* name;
  std::unique_ptr<StreamFilter> (*create)(const server::ListenerRuntime& listener);
};

}  // namespace remora::http
