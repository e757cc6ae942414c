#include "proxy/http/active_stream.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/http/deadline.h"
#include "proxy/http/path.h"
#include "proxy/http/router.h"

namespace remora::http {

ActiveStream::ActiveStream(server::WorkerContext& ctx, const server::Snapshot& snapshot,
                           const server::ListenerRuntime& listener, StreamConnection& connection,
                           RequestHead& request, absl::string_view downstream_address,
                           const event::Transport* transport,
                           const network::Destination* destination)
    : ctx_(ctx),
      snapshot_(snapshot),
      listener_(listener),
      connection_(connection),
      request_(request) {
  info_.start = ctx_.dispatcher.Now();
  info_.downstream_address.assign(downstream_address.data(), downstream_address.size());
  info_.destination = destination;
  if (transport != nullptr) {
    info_.downstream_tls = true;
    info_.peer_identity = transport->peer_identity();
    info_.local_identity = transport->local_identity();
  }
  for (const FilterFactory* f : listener_.filters) filters_.push_back(f->create(listener_));
  filters_.push_back(RouterFilter::kFactory.create(listener_));
  for (auto& f : filters_) f->set_callbacks(this);
  last_activity_ = info_.start;
}

ActiveStream::~ActiveStream() = default;

void ActiveStream::End() {
  if (!alive_) return;
  alive_ = false;
  watermark_callbacks_ = nullptr;
  decode_ = Held();
  encode_ = Held();
  for (auto& f : filters_) f->OnDestroy();
  for (auto& f : filters_) ctx_.dispatcher.DeferredDelete(std::move(f));
  filters_.clear();
}

bool ActiveStream::CheckIdle() {
  absl::Duration idle = listener_.config->stream_idle_timeout;
  if (!alive_ || idle <= absl::ZeroDuration()) return false;
  if (ctx_.dispatcher.Now() - last_activity_ < idle) return false;
  // Nothing moved either way for the whole timeout: a stalled peer or upstream holds buffers
  // and a slot for nothing.
  if (!response_started_) {
    SendLocalReply(request_complete_ ? 504 : 408, "stream_idle_timeout",
                   "no bytes moved on the stream within stream_idle_timeout");
  } else {
    info_.reason = "stream_idle_timeout";
    connection_.ResetStream(*this);
  }
  return true;
}

void ActiveStream::OnDownstreamAboveHighWatermark() {
  if (watermark_callbacks_ != nullptr) watermark_callbacks_->OnDownstreamAboveHighWatermark();
}

void ActiveStream::OnDownstreamBelowLowWatermark() {
  if (watermark_callbacks_ != nullptr) watermark_callbacks_->OnDownstreamBelowLowWatermark();
}

// ---- decoding -----------------------------------------------------------------------------------

void ActiveStream::ApplyForwardingPolicy(RequestHead& head) {
  if (listener_.config->direction != config::Direction::kInbound) return;
  // From the mesh to the local app: headers that claim to come from this proxy cannot be
  // trusted, and the app learns who called it.
  // The deadline is the exception: a caller may only shorten its own wait with it.
  for (size_t i = head.headers.size(); i-- > 0;) {
    absl::string_view name = head.headers.name(i);
    if (absl::StartsWithIgnoreCase(name, "x-remora-") && !IEquals(name, kDeadlineHeader)) {
      head.headers.RemoveAt(i);
    }
  }
  int xff = head.headers.Find("x-forwarded-for");
  if (xff >= 0) {
    std::string joined =
        absl::StrCat(head.headers.value(static_cast<size_t>(xff)), ", ", info_.downstream_address);
    head.headers.Set("x-forwarded-for", joined);
  } else {
    head.headers.Add("x-forwarded-for", info_.downstream_address);
  }
  head.headers.Set("x-forwarded-proto", info_.downstream_tls ? "https" : "http");
  // Who called, as only this proxy can vouch for it: never what the client claims.
  head.headers.Remove("x-forwarded-client-cert");
  if (listener_.config->tls.forward_client_cert && !info_.peer_identity.empty()) {
    std::string xfcc = info_.local_identity.empty() ? absl::StrCat("URI=", info_.peer_identity)
                                                    : absl::StrCat("By=", info_.local_identity,
                                                                   ";URI=", info_.peer_identity);
    head.headers.Set("x-forwarded-client-cert", xfcc);
  }
}

void ActiveStream::DecodeHeaders(bool end_stream) {
  request_complete_ = end_stream;
  info_.grpc = IsGrpc(request_.headers);
  if (!NormalizePath(request_.path, &request_.normalized_path)) {
    malformed_ = true;  // malformed input ends the connection, like a parse error
    SendLocalReply(400, "bad_request", "malformed percent-encoding in the path");
    return;
  }
  ApplyForwardingPolicy(request_);
  info_.route = listener_.routes.Match(request_);
  if (info_.route == nullptr && listener_.passthrough != nullptr && info_.destination != nullptr) {
    info_.route = &listener_.passthrough_route;  // to where the app was calling
  }
  DecodeHeadersFrom(0);
}

void ActiveStream::DecodeData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) request_complete_ = true;
  if (local_replied_ || !alive_) {
    data.Clear();  // the answer is given; the rest of the body is read and dropped
    return;
  }
  NoteActivity();
  DecodeDataFrom(0, data, end_stream);
}

void ActiveStream::DecodeTrailers(HeaderMap& trailers) {
  request_complete_ = true;
  if (local_replied_ || !alive_) return;
  NoteActivity();
  DecodeTrailersFrom(0, trailers);
}

void ActiveStream::DecodeHeadersFrom(size_t from) {
  for (size_t i = from; i < filters_.size() && alive_ && !local_replied_; ++i) {
    if (filters_[i]->DecodeHeaders(request_, request_complete_ && !decode_.active) ==
        FilterStatus::kStop) {
      if (i + 1 < filters_.size()) {
        decode_.active = true;
        decode_.headers = true;
        decode_.stopped_at = i;
      }
      return;
    }
  }
}

void ActiveStream::DecodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream) {
  if (decode_.active) {
    decode_.data.Move(data);
    decode_.end = decode_.end || end_stream;
    return;
  }
  for (size_t i = from; i < filters_.size() && alive_ && !local_replied_; ++i) {
    if (filters_[i]->DecodeData(data, end_stream) == FilterStatus::kStop) {
      if (i + 1 < filters_.size()) {
        decode_.active = true;
        decode_.stopped_at = i;
        decode_.data.Move(data);
        decode_.end = end_stream;
      }
      return;
    }
  }
}

void ActiveStream::DecodeTrailersFrom(size_t from, HeaderMap& trailers) {
  if (decode_.active) {
    decode_.trailers = &trailers;
    return;
  }
  for (size_t i = from; i < filters_.size() && alive_ && !local_replied_; ++i) {
    if (filters_[i]->DecodeTrailers(trailers) == FilterStatus::kStop) {
      if (i + 1 < filters_.size()) {
        decode_.active = true;
        decode_.stopped_at = i;
        decode_.trailers = &trailers;
      }
      return;
    }
  }
}

void ActiveStream::ContinueDecoding() {
  if (!decode_.active || !alive_) return;
  // Each step below may end this stream: stop as soon as it is over or held again.
  auto gone = [&] { return decode_.active || !alive_; };
  decode_.active = false;
  size_t next = decode_.stopped_at + 1;
  if (decode_.headers) {
    decode_.headers = false;
    DecodeHeadersFrom(next);
    next = 0;  // held body bytes have been seen by no filter yet
  }
  if (gone()) return;
  if (!decode_.data.empty() || decode_.end) {
    buffer::Buffer data = std::move(decode_.data);
    bool end = decode_.end && decode_.trailers == nullptr;
    decode_.end = false;
    DecodeDataFrom(next, data, end);
    next = 0;
  }
  if (gone()) return;
  if (HeaderMap* t = std::exchange(decode_.trailers, nullptr)) DecodeTrailersFrom(next, *t);
}

// ---- local replies ------------------------------------------------------------------------------

int ActiveStream::GrpcStatusFor(int http_status, absl::string_view reason) {
  // gRPC's HTTP-to-status mapping (doc/http-grpc-status-mapping.md), with the proxy's own
  // timeouts and a spent deadline as DEADLINE_EXCEEDED rather than the mapping's UNAVAILABLE.
  if (absl::EndsWith(reason, "timeout") || reason == "deadline_exceeded") return 4;
  switch (http_status) {
    case 400:
      return 13;  // INTERNAL
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 429:
      return 8;  // RESOURCE_EXHAUSTED
    case 502:
    case 503:
    case 504:
      return 14;  // UNAVAILABLE
    default:
      return 2;  // UNKNOWN
  }
}

buffer::Buffer ActiveStream::BuildLocalReply(ResponseHead& h, bool grpc, int status,
                                             absl::string_view reason, absl::string_view detail) {
  h.Clear();
  buffer::Buffer body;
  if (grpc) {
    // Trailers-only (gRPC over HTTP/2): the status travels in the only header block.
    h.status = 200;
    h.headers.Add("content-type", "application/grpc");
    h.headers.Add("grpc-status", absl::StrCat(GrpcStatusFor(status, reason)));
    h.headers.Add("grpc-message", detail);
    h.headers.Add("x-remora-reason", reason);
    h.framing = Framing::kContentLength;
    h.content_length = 0;
    return body;
  }
  h.status = status;
  h.headers.Add("content-type", "text/plain");
  h.headers.Add("x-remora-reason", reason);
  body.Append(detail);
  body.Append("\n");
  h.framing = Framing::kContentLength;
  h.content_length = body.length();
  return body;
}

void ActiveStream::SendLocalReply(int status, absl::string_view reason, absl::string_view detail,
                                  ExtraHeaders extra_headers) {
  if (!alive_) return;
  if (response_started_) {
    connection_.ResetStream(*this);
    return;
  }
  local_replied_ = true;
  info_.reason = reason;
  buffer::Buffer body = BuildLocalReply(local_reply_, info_.grpc, status, reason, detail);
  if (info_.upstream_attempts != 0) {
    local_reply_.headers.Add("x-remora-attempts", absl::StrCat(info_.upstream_attempts));
  }
  for (const auto& [name, value] : extra_headers) local_reply_.headers.Add(name, value);
  encode_ = Held();
  bool headers_only = body.empty();
  EncodeHeadersFrom(filters_.size() - 1, local_reply_, headers_only);
  if (!alive_ || headers_only) return;
  EncodeDataFrom(filters_.size() - 1, body, true);
}

// ---- encoding -----------------------------------------------------------------------------------

// Encode runs from the filter before the router down to the first; `from` is one past the first
// filter to run (so filters_.size() - 1 skips the router, which produces responses).
void ActiveStream::EncodeHeadersFrom(size_t from, ResponseHead& head, bool end_stream) {
  NoteActivity();
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeHeaders(head, end_stream);
    if (!alive_ || response_started_) return;  // answered or ended
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.head = KeepHead(head);
      encode_.end = end_stream;
      return;
    }
  }
  if (head.status >= 200 || head.status == 101) {
    response_started_ = true;
    info_.response_status = head.status;
  }
  connection_.WriteHeaders(*this, head, end_stream);
  if (end_stream && alive_) ResponseComplete();
}

void ActiveStream::EncodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream) {
  if (encode_.active) {
    encode_.data.Move(data);
    encode_.end = encode_.end || end_stream;
    return;
  }
  NoteActivity();
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeData(data, end_stream);
    if (!alive_) return;
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.data.Move(data);
      encode_.end = end_stream;
      return;
    }
  }
  connection_.WriteData(*this, data, end_stream);
  if (end_stream && alive_) ResponseComplete();
}

void ActiveStream::EncodeTrailersFrom(size_t from, HeaderMap& trailers) {
  if (encode_.active) {
    encode_.trailers = KeepTrailers(trailers);
    return;
  }
  NoteActivity();
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeTrailers(trailers);
    if (!alive_) return;
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.trailers = KeepTrailers(trailers);
      return;
    }
  }
  connection_.WriteTrailers(*this, trailers);
  if (alive_) ResponseComplete();
}

void ActiveStream::ResponseComplete() {
  response_complete_ = true;
  connection_.OnResponseComplete(*this);
}

void ActiveStream::ContinueEncoding() {
  if (!encode_.active || !alive_) return;
  auto gone = [&] { return encode_.active || !alive_; };
  encode_.active = false;
  size_t next = encode_.stopped_at;  // EncodeXFrom runs filters below `from`
  if (ResponseHead* h = std::exchange(encode_.head, nullptr)) {
    bool end = encode_.end && encode_.data.empty() && encode_.trailers == nullptr;
    if (end) encode_.end = false;
    EncodeHeadersFrom(next, *h, end);
    next = filters_.size() - 1;
  }
  if (gone()) return;
  if (!encode_.data.empty() || encode_.end) {
    buffer::Buffer data = std::move(encode_.data);
    bool end = encode_.end && encode_.trailers == nullptr;
    encode_.end = false;
    EncodeDataFrom(next, data, end);
    next = filters_.size() - 1;
  }
  if (gone()) return;
  if (HeaderMap* t = std::exchange(encode_.trailers, nullptr)) EncodeTrailersFrom(next, *t);
}

void ActiveStream::EncodeInformational(ResponseHead& head) {
  if (!alive_ || local_replied_) return;
  NoteActivity();
  connection_.WriteInformational(*this, head);
}

void ActiveStream::EncodeHeaders(ResponseHead& head, bool end_stream) {
  if (!alive_ || local_replied_) return;
  EncodeHeadersFrom(filters_.size() - 1, head, end_stream);
}

void ActiveStream::EncodeData(buffer::Buffer& data, bool end_stream) {
  if (!alive_ || local_replied_) return data.Clear();
  EncodeDataFrom(filters_.size() - 1, data, end_stream);
}

void ActiveStream::EncodeTrailers(HeaderMap& trailers) {
  if (!alive_ || local_replied_) return;
  EncodeTrailersFrom(filters_.size() - 1, trailers);
}

// ---- tunnels, resets, backpressure --------------------------------------------------------------

void ActiveStream::StartTunnel(TunnelSink* sink) {
  if (alive_) connection_.StartTunnel(*this, sink);
}

void ActiveStream::TunnelWrite(buffer::Buffer& data) {
  NoteActivity();
  connection_.TunnelWrite(data);
}

void ActiveStream::TunnelShutdown() { connection_.TunnelShutdown(); }

void ActiveStream::ResetStream() {
  if (alive_) connection_.ResetStream(*this);
}

void ActiveStream::SetDownstreamReadDisabled(bool disabled) {
  if (alive_) connection_.SetReadDisabled(*this, disabled);
}

}  // namespace remora::http
