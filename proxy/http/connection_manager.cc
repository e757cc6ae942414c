#include "proxy/http/connection_manager.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/http/path.h"
#include "proxy/http/router.h"

namespace remora::http {

using event::TcpConnection;

namespace {

HeaderLimits LimitsOf(const config::Listener& l) {
  return HeaderLimits{l.max_request_header_bytes, l.max_request_headers};
}

// The client's address without the port: "127.0.0.1:5000" -> "127.0.0.1", "[::1]:5000" -> "::1".
std::string HostOf(const std::string& peer) {
  if (!peer.empty() && peer[0] == '[') {
    size_t close = peer.find(']');
    return peer.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return peer.substr(0, peer.rfind(':'));
}

}  // namespace

void HttpConnectionManager::Start(server::WorkerContext& ctx,
                                  std::shared_ptr<const server::Snapshot> snapshot,
                                  const server::ListenerRuntime& listener,
                                  std::unique_ptr<TcpConnection> downstream) {
  auto* m = new HttpConnectionManager(ctx, std::move(snapshot), listener, std::move(downstream));
  ctx.connections.Add(m);
  ctx.stats.Add(listener.stats.cx_total);
  ctx.stats.AddSigned(listener.stats.cx_active, 1);
  m->conn_->ReadEnable(true);
}

HttpConnectionManager::HttpConnectionManager(server::WorkerContext& ctx,
                                             std::shared_ptr<const server::Snapshot> snapshot,
                                             const server::ListenerRuntime& listener,
                                             std::unique_ptr<TcpConnection> downstream)
    : ctx_(ctx),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      conn_(std::move(downstream)),
      codec_(LimitsOf(*listener.config), out_) {
  conn_->SetCallbacks(this);
  uint32_t limit = listener_.config->buffer_limit_bytes;
  conn_->SetWriteWatermarks(limit / 2, limit);
  codec_.set_decoder(this);
  timer_ = ctx_.dispatcher.CreateTimer([this] { OnTimer(); });
  flush_timer_ = ctx_.dispatcher.CreateTimer([this] { FlushOut(); });
  info_.downstream_address = HostOf(conn_->peer());
  // A client that connects must start a request within the header timeout, like one that
  // started it.
  ArmTimer(listener_.config->request_header_timeout);
}

HttpConnectionManager::~HttpConnectionManager() = default;

// ---- downstream socket --------------------------------------------------------------------------

void HttpConnectionManager::OnRead(buffer::Buffer& data) {
  ctx_.stats.Add(listener_.stats.rx_bytes, data.length());
  if (closing_) {
    data.Clear();
    return;
  }
  if (tunnel_sink_ != nullptr) {
    tunnel_sink_->OnTunnelData(data);
    return;
  }
  // The first bytes of a request (re)start the header deadline; the idle deadline ends.
  if (!stream_active_ && in_.empty() && !codec_.message_started()) {
    ArmTimer(listener_.config->request_header_timeout);
  }
  in_.Move(data);
  Dispatch();
}

void HttpConnectionManager::Dispatch() {
  if (dispatching_) {
    redispatch_ = true;
    return;
  }
  dispatching_ = true;
  do {
    redispatch_ = false;
    // A client that does not read its responses gets no new ones: parsing (and below, reading)
    // waits until its backlog drains.
    while (!closing_ && !in_.empty() && !(downstream_above_high_ && !stream_active_)) {
      DispatchResult r = codec_.Dispatch(in_);
      if (r == DispatchResult::kError) {
        OnCodecError();
        break;
      }
      if (r != DispatchResult::kNeedMore) break;  // waiting for the response (or stopped)
    }
  } while (redispatch_ && !closing_ && !finished_);
  dispatching_ = false;
  if (closing_) in_.Clear();
  if (!finished_) {
    UpdateReading();
    FlushOut();
  }
}

void HttpConnectionManager::OnCodecError() {
  int status = codec_.error_status();
  LOG_DEBUG("malformed request from %s: %d %s", conn_->peer(), status, codec_.error_detail());
  absl::string_view reason = "bad_request";
  if (status == 431) reason = "headers_too_large";
  if (status == 505) reason = "http_version_not_supported";
  if (status == 501) reason = "not_implemented";
  if (status == 405) reason = "connect_not_allowed";
  if (stream_active_) {
    // A malformed body after a good head: the request may already be upstream.
    if (response_started_) {
      ResetStream();
    } else {
      request_complete_ = false;
      SendLocalReply(status, reason, codec_.error_detail());
    }
    return;
  }
  DirectReply(status, reason, codec_.error_detail());
}

void HttpConnectionManager::DirectReply(int status, absl::string_view reason,
                                        absl::string_view detail) {
  buffer::Buffer body = BuildLocalReply(status, reason, detail);
  local_reply_.keep_alive = false;
  codec_.EncodeHeaders(local_reply_, false);
  codec_.EncodeData(body, true);
  FlushOut();
  CloseAfterFlush();
}

void HttpConnectionManager::OnEndOfStream() {
  peer_eof_ = true;
  if (tunnel_sink_ != nullptr) {
    tunnel_sink_->OnTunnelEnd();
    if (tunnel_upstream_done_) CloseAfterFlush();
    return;
  }
  if (stream_active_ && request_complete_ && !closing_) return;  // answer, then close
  CloseAfterFlush();
}

void HttpConnectionManager::OnEvent(TcpConnection::Event) {
  // Only kRemoteReset reaches an accepted connection: it is closed already.
  Finish();
}

void HttpConnectionManager::OnWriteHighWatermark() {
  downstream_above_high_ = true;
  if (watermark_callbacks_ != nullptr) watermark_callbacks_->OnDownstreamAboveHighWatermark();
  if (!dispatching_) UpdateReading();
}

void HttpConnectionManager::OnWriteLowWatermark() {
  downstream_above_high_ = false;
  if (watermark_callbacks_ != nullptr) watermark_callbacks_->OnDownstreamBelowLowWatermark();
  // Requests parked while the client was not taking responses may go on.
  UpdateReading();
  Dispatch();
}

void HttpConnectionManager::OnFlushed() {
  if (closing_) Finish();
}

void HttpConnectionManager::FlushOut() {
  if (finished_ || out_.empty()) return;
  flush_timer_->Disable();
  ctx_.stats.Add(listener_.stats.tx_bytes, out_.length());
  conn_->Write(out_);
  if (closing_ && !finished_ && conn_->write_backlog() == 0) Finish();
}

void HttpConnectionManager::UpdateReading() {
  if (closing_ || finished_) return;
  // A request waiting behind the current one is held in in_: stop reading once that backlog
  // reaches the buffer limit.
  bool backlog_full = in_.length() >= listener_.config->buffer_limit_bytes;
  conn_->ReadEnable(!read_disabled_by_stream_ && !backlog_full && !downstream_above_high_);
}

void HttpConnectionManager::ArmTimer(absl::Duration after) { timer_->Enable(after); }

void HttpConnectionManager::OnTimer() {
  if (closing_) {
    Finish();  // the close-flush deadline
    return;
  }
  if (stream_active_) return;  // the head arrived; route timeouts belong to the router
  if (codec_.message_started() || !in_.empty()) {
    DirectReply(408, "header_timeout", "request header not received in time");
    return;
  }
  CloseAfterFlush();  // idle keep-alive connection, or a client that never sent a byte
}

void HttpConnectionManager::CloseAfterFlush() {
  if (finished_) return;
  if (!closing_) {
    closing_ = true;
    conn_->ReadEnable(false);
    // Inside Dispatch the codec is reading in_: stop it, and let Dispatch drop the input.
    if (dispatching_) {
      codec_.Stop();
    } else {
      in_.Clear();
    }
    timer_->Enable(kCloseFlushTimeout);
  }
  if (stream_active_) EndStream();
  if (out_.empty() && conn_->write_backlog() == 0) Finish();
}

void HttpConnectionManager::Finish(TcpConnection::CloseMode mode) {
  if (finished_) return;
  finished_ = true;
  if (stream_active_) EndStream();
  timer_.reset();
  flush_timer_.reset();
  conn_->Close(mode);
  ctx_.stats.AddSigned(listener_.stats.cx_active, -1);
  ctx_.connections.Remove(this);
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

void HttpConnectionManager::StartDrain() {
  draining_ = true;
  if (!stream_active_ && !codec_.message_started()) CloseAfterFlush();
}

void HttpConnectionManager::CloseNow() { Finish(); }

// ---- the stream ---------------------------------------------------------------------------------

void HttpConnectionManager::ApplyForwardingPolicy(RequestHead& head) {
  if (listener_.config->direction != config::Direction::kInbound) return;
  // From the mesh to the local app: headers that claim to come from this proxy cannot be
  // trusted, and the app learns who called it.
  for (size_t i = head.headers.size(); i-- > 0;) {
    if (absl::StartsWithIgnoreCase(head.headers.name(i), "x-remora-")) head.headers.RemoveAt(i);
  }
  int xff = head.headers.Find("x-forwarded-for");
  if (xff >= 0) {
    std::string joined =
        absl::StrCat(head.headers.value(static_cast<size_t>(xff)), ", ", info_.downstream_address);
    head.headers.Set("x-forwarded-for", joined);
  } else {
    head.headers.Add("x-forwarded-for", info_.downstream_address);
  }
  head.headers.Set("x-forwarded-proto", "http");
}

void HttpConnectionManager::OnHeaders(RequestHead& head, bool end_stream) {
  timer_->Disable();
  BeginStream();
  request_complete_ = end_stream;
  if (!NormalizePath(head.path, &head.normalized_path)) {
    close_after_response_ = true;  // malformed input ends the connection, like a parse error
    SendLocalReply(400, "bad_request", "malformed percent-encoding in the path");
    return;
  }
  ApplyForwardingPolicy(head);
  DecodeHeadersFrom(0);
  // Headers-only requests are complete here; a body keeps the deadline off until the response.
}

void HttpConnectionManager::OnData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) request_complete_ = true;
  if (local_replied_ || !stream_active_) {
    data.Clear();  // the answer is given; the rest of the body is read and dropped
    return;
  }
  DecodeDataFrom(0, data, end_stream);
}

void HttpConnectionManager::OnTrailers(HeaderMap& trailers) {
  request_complete_ = true;
  if (local_replied_ || !stream_active_) return;
  DecodeTrailersFrom(0, trailers);
}

void HttpConnectionManager::BeginStream() {
  stream_active_ = true;
  ++stream_id_;
  request_complete_ = response_started_ = response_complete_ = local_replied_ = false;
  decode_.Reset();
  encode_.Reset();
  info_.start = ctx_.dispatcher.Now();
  info_.reason = {};
  info_.response_status = 0;
  for (const FilterFactory* f : listener_.filters) filters_.push_back(f->create(listener_));
  filters_.push_back(RouterFilter::kFactory.create(listener_));
  for (auto& f : filters_) f->set_callbacks(this);
}

void HttpConnectionManager::EndStream() {
  if (!stream_active_) return;
  stream_active_ = false;
  watermark_callbacks_ = nullptr;
  tunnel_sink_ = nullptr;
  read_disabled_by_stream_ = false;
  decode_.Reset();
  encode_.Reset();
  for (auto& f : filters_) f->OnDestroy();
  for (auto& f : filters_) ctx_.dispatcher.DeferredDelete(std::move(f));
  filters_.clear();
}

void HttpConnectionManager::DecodeHeadersFrom(size_t from) {
  RequestHead& head = codec_.request();
  for (size_t i = from; i < filters_.size() && stream_active_ && !local_replied_; ++i) {
    if (filters_[i]->DecodeHeaders(head, request_complete_ && !decode_.active) ==
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

void HttpConnectionManager::DecodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream) {
  if (decode_.active) {
    decode_.data.Move(data);
    decode_.end = decode_.end || end_stream;
    return;
  }
  for (size_t i = from; i < filters_.size() && stream_active_ && !local_replied_; ++i) {
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

void HttpConnectionManager::DecodeTrailersFrom(size_t from, HeaderMap& trailers) {
  if (decode_.active) {
    decode_.trailers = &trailers;
    return;
  }
  for (size_t i = from; i < filters_.size() && stream_active_ && !local_replied_; ++i) {
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

void HttpConnectionManager::ContinueDecoding() {
  if (!decode_.active || !stream_active_) return;
  // Each step below may end this stream and, through a pipelined request, begin the next one:
  // stop as soon as the stream is no longer the one that was held.
  const uint64_t id = stream_id_;
  auto gone = [&] { return decode_.active || !stream_active_ || stream_id_ != id; };
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
  Dispatch();
}

void HttpConnectionManager::SendLocalReply(int status, absl::string_view reason,
                                           absl::string_view detail) {
  if (!stream_active_) return;
  if (response_started_) {
    ResetStream();
    return;
  }
  local_replied_ = true;
  info_.reason = reason;
  // Whether the connection survives the reply (not if request bytes are still unread) is
  // decided where every response head is: EncodeHeadersFrom.
  buffer::Buffer body = BuildLocalReply(status, reason, detail);
  encode_.active = false;
  EncodeHeadersFrom(filters_.size() - 1, local_reply_, false);
  if (!stream_active_) return;
  EncodeDataFrom(filters_.size() - 1, body, true);
}

buffer::Buffer HttpConnectionManager::BuildLocalReply(int status, absl::string_view reason,
                                                      absl::string_view detail) {
  ResponseHead& h = local_reply_;
  h.Clear();
  h.status = status;
  h.headers.Add("content-type", "text/plain");
  h.headers.Add("x-remora-reason", reason);
  buffer::Buffer body;
  body.Append(detail);
  body.Append("\n");
  h.framing = Framing::kContentLength;
  h.content_length = body.length();
  return body;
}

// ---- encoding -----------------------------------------------------------------------------------

// Encode runs from the filter before the router down to the first; `from` is one past the first
// filter to run (so filters_.size() - 1 skips the router, which produces responses).
void HttpConnectionManager::EncodeHeadersFrom(size_t from, ResponseHead& head, bool end_stream) {
  const uint64_t id = stream_id_;
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeHeaders(head, end_stream);
    if (!stream_active_ || stream_id_ != id || response_started_) return;  // answered or ended
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.head = &head;
      encode_.end = end_stream;
      return;
    }
  }
  if (head.status >= 200 || head.status == 101) {
    response_started_ = true;
    info_.response_status = head.status;
  }
  // Tell the client when this response is the connection's last (drain, a half-closed or
  // misbehaving client, or a response that starts before the request has ended: the rest of the
  // upload has nowhere to go), so it does not send another request into a closing socket.
  if (draining_ || close_after_response_ || peer_eof_ || !request_complete_) {
    head.keep_alive = false;
  }
  codec_.EncodeHeaders(head, end_stream);
  if (end_stream) {
    OnResponseComplete();
  } else {
    // The body usually follows in the same loop turn and goes out in the same write; if not,
    // the head leaves on its own at the start of the next turn.
    flush_timer_->Enable(absl::ZeroDuration());
  }
}

void HttpConnectionManager::EncodeDataFrom(size_t from, buffer::Buffer& data, bool end_stream) {
  if (encode_.active) {
    encode_.data.Move(data);
    encode_.end = encode_.end || end_stream;
    return;
  }
  const uint64_t id = stream_id_;
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeData(data, end_stream);
    if (!stream_active_ || stream_id_ != id) return;
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.data.Move(data);
      encode_.end = end_stream;
      return;
    }
  }
  codec_.EncodeData(data, end_stream);
  FlushOut();
  if (end_stream) OnResponseComplete();
}

void HttpConnectionManager::EncodeTrailersFrom(size_t from, HeaderMap& trailers) {
  if (encode_.active) {
    encode_.trailers = &trailers;
    return;
  }
  const uint64_t id = stream_id_;
  for (size_t i = from; i-- > 0;) {
    FilterStatus status = filters_[i]->EncodeTrailers(trailers);
    if (!stream_active_ || stream_id_ != id) return;
    if (status == FilterStatus::kStop) {
      encode_.active = true;
      encode_.stopped_at = i;
      encode_.trailers = &trailers;
      return;
    }
  }
  codec_.EncodeTrailers(trailers);
  FlushOut();
  OnResponseComplete();
}

void HttpConnectionManager::ContinueEncoding() {
  if (!encode_.active || !stream_active_) return;
  const uint64_t id = stream_id_;
  auto gone = [&] { return encode_.active || !stream_active_ || stream_id_ != id; };
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

void HttpConnectionManager::EncodeInformational(ResponseHead& head) {
  codec_.EncodeInformational(head);
  FlushOut();
}

void HttpConnectionManager::EncodeHeaders(ResponseHead& head, bool end_stream) {
  if (!stream_active_ || local_replied_) return;
  EncodeHeadersFrom(filters_.size() - 1, head, end_stream);
}

void HttpConnectionManager::EncodeData(buffer::Buffer& data, bool end_stream) {
  if (!stream_active_ || local_replied_) return data.Clear();
  EncodeDataFrom(filters_.size() - 1, data, end_stream);
}

void HttpConnectionManager::EncodeTrailers(HeaderMap& trailers) {
  if (!stream_active_ || local_replied_) return;
  EncodeTrailersFrom(filters_.size() - 1, trailers);
}

void HttpConnectionManager::OnResponseComplete() {
  response_complete_ = true;
  FlushOut();
  if (finished_) return;
  if (!request_complete_) {
    // An answer (the upstream's or our own) before the whole request: the rest of the body has
    // nowhere to go, and the response said Connection: close.
    CloseAfterFlush();
    return;
  }
  bool keep = codec_.response_keeps_alive() && !peer_eof_ && !draining_ && !closing_ &&
              !close_after_response_;
  EndStream();
  if (!keep) {
    CloseAfterFlush();
    return;
  }
  codec_.Resume();
  ArmTimer(in_.empty() ? listener_.config->idle_timeout : listener_.config->request_header_timeout);
  Dispatch();
}

// ---- tunnels and resets -------------------------------------------------------------------------

void HttpConnectionManager::StartTunnel(TunnelSink* sink) {
  tunnel_sink_ = sink;
  FlushOut();
  conn_->ReadEnable(true);
  if (!in_.empty()) sink->OnTunnelData(in_);
  if (peer_eof_) sink->OnTunnelEnd();  // the client's FIN came before the 101
}

void HttpConnectionManager::TunnelWrite(buffer::Buffer& data) {
  out_.Move(data);
  FlushOut();
}

void HttpConnectionManager::TunnelShutdown() {
  tunnel_upstream_done_ = true;
  FlushOut();
  if (peer_eof_) {
    CloseAfterFlush();
  } else {
    conn_->Shutdown();
  }
}

void HttpConnectionManager::ResetStream() {
  // After a response has begun, an RST (not a FIN) tells the client its body is cut short, even
  // a body that would otherwise end with the connection.
  bool reset = response_started_;
  EndStream();
  Finish(reset ? TcpConnection::CloseMode::kReset : TcpConnection::CloseMode::kNow);
}

void HttpConnectionManager::SetDownstreamReadDisabled(bool disabled) {
  read_disabled_by_stream_ = disabled;
  if (!dispatching_) UpdateReading();
}

}  // namespace remora::http
