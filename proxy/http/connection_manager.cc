#include "proxy/http/connection_manager.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/http/http2_connection_manager.h"
#include "proxy/network/address.h"

namespace remora::http {

using event::TcpConnection;

namespace {

HeaderLimits LimitsOf(const config::Listener& l) {
  return HeaderLimits{l.max_request_header_bytes, l.max_request_headers};
}

}  // namespace

void HttpConnectionManager::Start(server::WorkerContext& ctx,
                                  std::shared_ptr<const server::Snapshot> snapshot,
                                  const server::ListenerRuntime& listener,
                                  std::unique_ptr<TcpConnection> downstream,
                                  std::unique_ptr<network::Destination> destination) {
  auto* m = new HttpConnectionManager(ctx, std::move(snapshot), listener, std::move(downstream));
  m->destination_ = std::move(destination);
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
  // Started during a drain (handed on by a protocol sniffer, its request already read): serve
  // that request, then close.
  draining_ = ctx.draining;
  timer_ = ctx_.dispatcher.CreateTimer([this] { OnTimer(); });
  flush_timer_ = ctx_.dispatcher.CreateTimer([this] { FlushOut(); });
  peer_host_ = network::PeerHost(conn_->peer());
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
    stream_->NoteActivity();
    tunnel_sink_->OnTunnelData(data);
    return;
  }
  // The first bytes of a request (re)start the header deadline; the idle deadline ends.
  if (!stream_ && in_.empty() && !codec_.message_started()) {
    ArmTimer(listener_.config->request_header_timeout);
  }
  in_.Move(data);
  if (first_bytes_ && MaybeHandOverToHttp2()) return;
  Dispatch();
}

bool HttpConnectionManager::MaybeHandOverToHttp2() {
  // Prior knowledge (RFC 9113 3.3): the client preface instead of a request line. A prefix of it
  // waits for more bytes.
  const absl::string_view preface = Http2ServerCodec::kClientPreface;
  std::string got;
  for (size_t i = 0; i < in_.slice_count() && got.size() < preface.size(); ++i) {
    absl::string_view v = in_.slice(i).view().substr(0, preface.size() - got.size());
    got.append(v.data(), v.size());
  }
  if (!absl::StartsWith(preface, got)) {
    first_bytes_ = false;
    return false;
  }
  if (got.size() < preface.size()) return true;
  // The connection (its stats included) moves to the HTTP/2 manager; this one goes quietly.
  first_bytes_ = false;
  finished_ = true;
  timer_.reset();
  flush_timer_.reset();
  ctx_.connections.Remove(this);
  Http2ConnectionManager::Start(ctx_, std::move(snapshot_), listener_, std::move(conn_), in_,
                                std::move(destination_));
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
  return true;
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
    while (!closing_ && !in_.empty() && !(downstream_above_high_ && !stream_)) {
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
  if (stream_) {
    // A malformed body after a good head: the request may already be upstream. The reply (or
    // the reset, once the response has begun) is the connection's last.
    close_after_response_ = true;
    stream_->SendLocalReply(status, reason, codec_.error_detail());
    return;
  }
  DirectReply(status, reason, codec_.error_detail());
}

void HttpConnectionManager::DirectReply(int status, absl::string_view reason,
                                        absl::string_view detail) {
  ResponseHead reply;
  buffer::Buffer body = ActiveStream::BuildLocalReply(reply, false, status, reason, detail);
  reply.keep_alive = false;
  codec_.EncodeHeaders(reply, false);
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
  if (stream_ && stream_->request_complete() && !closing_) return;  // answer, then close
  CloseAfterFlush();
}

void HttpConnectionManager::OnEvent(TcpConnection::Event) {
  // Only kRemoteReset reaches an accepted connection: it is closed already.
  Finish();
}

void HttpConnectionManager::OnWriteHighWatermark() {
  downstream_above_high_ = true;
  if (stream_) stream_->OnDownstreamAboveHighWatermark();
  if (!dispatching_) UpdateReading();
}

void HttpConnectionManager::OnWriteLowWatermark() {
  downstream_above_high_ = false;
  if (stream_) stream_->OnDownstreamBelowLowWatermark();
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
  if (stream_) {
    // The stream idle timeout (route timeouts belong to the router). Activity only records its
    // time; an early firing waits for the rest.
    if (!stream_->CheckIdle() && stream_ && !closing_ && !finished_) {
      timer_->Enable(stream_->IdleLeft());
    }
    return;
  }
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
  EndStream();
  if (out_.empty() && conn_->write_backlog() == 0) Finish();
}

void HttpConnectionManager::Finish(TcpConnection::CloseMode mode) {
  if (finished_) return;
  finished_ = true;
  EndStream();
  timer_.reset();
  flush_timer_.reset();
  conn_->Close(mode);
  ctx_.stats.AddSigned(listener_.stats.cx_active, -1);
  ctx_.connections.Remove(this);
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

void HttpConnectionManager::StartDrain() {
  draining_ = true;
  if (!stream_ && !codec_.message_started()) CloseAfterFlush();
}

void HttpConnectionManager::CloseNow() { Finish(); }

// ---- the stream ---------------------------------------------------------------------------------

void HttpConnectionManager::OnHeaders(RequestHead& head, bool end_stream) {
  // The connection's timer turns from header deadline to the stream's idle timeout.
  if (listener_.config->stream_idle_timeout > absl::ZeroDuration()) {
    timer_->Enable(listener_.config->stream_idle_timeout);
  } else {
    timer_->Disable();
  }
  stream_ = std::make_unique<ActiveStream>(ctx_, *snapshot_, listener_, *this, head, peer_host_,
                                           conn_->transport(), destination_.get());
  stream_->DecodeHeaders(end_stream);
  // Headers-only requests are complete here; a body keeps the deadline off until the response.
}

void HttpConnectionManager::OnData(buffer::Buffer& data, bool end_stream) {
  if (!stream_) {
    data.Clear();  // the answer is given; the rest of the body is read and dropped
    return;
  }
  stream_->DecodeData(data, end_stream);
}

void HttpConnectionManager::OnTrailers(HeaderMap& trailers) {
  if (stream_) stream_->DecodeTrailers(trailers);
}

void HttpConnectionManager::EndStream() {
  if (!stream_) return;
  tunnel_sink_ = nullptr;
  read_disabled_by_stream_ = false;
  stream_->End();
  ctx_.dispatcher.DeferredDelete(std::move(stream_));
}

void HttpConnectionManager::WriteInformational(ActiveStream&, ResponseHead& head) {
  codec_.EncodeInformational(head);
  FlushOut();
}

void HttpConnectionManager::WriteHeaders(ActiveStream& s, ResponseHead& head, bool end_stream) {
  // Tell the client when this response is the connection's last (drain, a half-closed or
  // misbehaving client, or a response that starts before the request has ended: the rest of the
  // upload has nowhere to go), so it does not send another request into a closing socket.
  if (draining_ || close_after_response_ || s.malformed() || peer_eof_ || !s.request_complete()) {
    head.keep_alive = false;
  }
  codec_.EncodeHeaders(head, end_stream);
  // The body usually follows in the same loop turn and goes out in the same write; if not, the
  // head leaves on its own at the start of the next turn.
  if (!end_stream) flush_timer_->Enable(absl::ZeroDuration());
}

void HttpConnectionManager::WriteData(ActiveStream&, buffer::Buffer& data, bool end_stream) {
  codec_.EncodeData(data, end_stream);
  FlushOut();
}

void HttpConnectionManager::WriteTrailers(ActiveStream&, HeaderMap& trailers) {
  codec_.EncodeTrailers(trailers);
  FlushOut();
}

void HttpConnectionManager::OnResponseComplete(ActiveStream& s) {
  FlushOut();
  if (finished_) return;
  if (!s.request_complete()) {
    // An answer (the upstream's or our own) before the whole request: the rest of the body has
    // nowhere to go, and the response said Connection: close.
    CloseAfterFlush();
    return;
  }
  bool keep = codec_.response_keeps_alive() && !peer_eof_ && !draining_ && !closing_ &&
              !close_after_response_ && !s.malformed();
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

void HttpConnectionManager::StartTunnel(ActiveStream&, FilterCallbacks::TunnelSink* sink) {
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

void HttpConnectionManager::ResetStream(ActiveStream& s) {
  // After a response has begun, an RST (not a FIN) tells the client its body is cut short, even
  // a body that would otherwise end with the connection.
  bool reset = s.response_started();
  EndStream();
  Finish(reset ? TcpConnection::CloseMode::kReset : TcpConnection::CloseMode::kNow);
}

void HttpConnectionManager::SetReadDisabled(ActiveStream&, bool disabled) {
  read_disabled_by_stream_ = disabled;
  if (!dispatching_) UpdateReading();
}

}  // namespace remora::http
