#include "proxy/http/http2_connection_manager.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "proxy/common/block_cache.h"
#include "proxy/common/log.h"
#include "proxy/network/address.h"

namespace remora::http {

using event::TcpConnection;

namespace {
// How long drain waits for the PING that follows the shutdown notice before the final GOAWAY.
constexpr absl::Duration kGoawayPingWait = absl::Seconds(1);
constexpr absl::Duration kCloseFlushTimeout = absl::Seconds(5);
}  // namespace

// One request stream: the codec's stream and the ActiveStream running its filter chain.
class Http2ConnectionManager::Stream final : public RequestDecoder,
                                             public StreamConnection,
                                             public mem::Cached {
 public:
  Stream(Http2ConnectionManager& cm, Http2ServerCodec::ServerStream& s) : cm_(cm), codec_(&s) {}
  ~Stream() override { EndActive(); }

  Http2ServerCodec::ServerStream* codec() { return codec_; }
  ActiveStream* active() { return active_.get(); }
  // The codec closed the stream: nothing more may be encoded on it.
  void Detach() {
    codec_ = nullptr;
    EndActive();
  }
  // The filter chain is done with the stream; the codec stream may live on (the response is
  // still queued, or the request is still arriving: its bytes are dropped).
  // When the filter chain ended: a stream whose response is queued but never taken (a closed
  // window) is cancelled stream_idle_timeout after that.
  absl::Time ended_at() const { return ended_at_; }
  void EndActive() {
    if (!active_) return;
    ended_at_ = cm_.ctx_.dispatcher.Now();
    if (codec_ != nullptr) {
      codec_->set_decoder(nullptr);
      // The rest of the upload is read and dropped: its window must come back, whatever the
      // router last asked.
      codec_->ReadDisable(false);
    }
    active_->End();
    cm_.ctx_.dispatcher.DeferredDelete(std::move(active_));
  }

  // RequestDecoder
  void OnHeaders(RequestHead& head, bool end_stream) override {
    active_ = std::make_unique<ActiveStream>(cm_.ctx_, *cm_.snapshot_, cm_.listener_, *this, head,
                                             cm_.peer_host_, cm_.conn_->transport(),
                                             cm_.destination_.get());
    cm_.ArmIdleSweep();
    active_->info().downstream_http2 = true;
    active_->DecodeHeaders(end_stream);
  }
  void OnData(buffer::Buffer& data, bool end_stream) override {
    if (active_) {
      active_->DecodeData(data, end_stream);
    } else {
      data.Clear();
    }
  }
  void OnTrailers(HeaderMap& trailers) override {
    if (active_) active_->DecodeTrailers(trailers);
  }

  // StreamConnection
  void WriteInformational(ActiveStream&, ResponseHead& head) override {
    if (codec_ != nullptr) codec_->EncodeInformational(head);
  }
  void WriteHeaders(ActiveStream&, ResponseHead& head, bool end_stream) override {
    if (codec_ != nullptr) codec_->EncodeHeaders(head, end_stream);
  }
  void WriteData(ActiveStream&, buffer::Buffer& data, bool end_stream) override {
    if (codec_ != nullptr) {
      codec_->EncodeData(data, end_stream);
    } else {
      data.Clear();
    }
  }
  void WriteTrailers(ActiveStream&, HeaderMap& trailers) override {
    if (codec_ != nullptr) codec_->EncodeTrailers(trailers);
  }
  void OnResponseComplete(ActiveStream&) override {
    EndActive();
    cm_.ArmIdleSweep();  // until the response has left
  }
  void ResetStream(ActiveStream& s) override {
    uint32_t code =
        s.info().reason == "stream_idle_timeout" ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR;
    if (codec_ != nullptr) codec_->Reset(code);
    EndActive();
  }
  void SetReadDisabled(ActiveStream&, bool disabled) override {
    if (codec_ != nullptr) codec_->ReadDisable(disabled);
  }
  void StartTunnel(ActiveStream& s, FilterCallbacks::TunnelSink*) override {
    ResetStream(s);  // no upgrade over HTTP/2 (the request could not have asked for one)
  }
  void TunnelWrite(buffer::Buffer& data) override { data.Clear(); }
  void TunnelShutdown() override {}

 private:
  Http2ConnectionManager& cm_;
  Http2ServerCodec::ServerStream* codec_;
  std::unique_ptr<ActiveStream> active_;
  absl::Time ended_at_;
};

Http2Settings Http2ConnectionManager::SettingsFor(const config::Listener& l) {
  Http2Settings s;
  s.max_concurrent_streams = l.http2_max_concurrent_streams;
  s.initial_stream_window = l.buffer_limit_bytes;
  s.stream_buffer_limit = l.buffer_limit_bytes;
  s.connection_window = std::max<uint32_t>(l.buffer_limit_bytes * 4, 1024 * 1024);
  s.header_limits = HeaderLimits{l.max_request_header_bytes, l.max_request_headers};
  s.reset_burst = l.http2_reset_burst;
  s.reset_rate = l.http2_reset_rate;
  return s;
}

void Http2ConnectionManager::Start(server::WorkerContext& ctx,
                                   std::shared_ptr<const server::Snapshot> snapshot,
                                   const server::ListenerRuntime& listener,
                                   std::unique_ptr<TcpConnection> downstream,
                                   buffer::Buffer& first_bytes,
                                   std::unique_ptr<network::Destination> destination) {
  auto* m = new Http2ConnectionManager(ctx, std::move(snapshot), listener, std::move(downstream));
  m->destination_ = std::move(destination);
  ctx.connections.Add(m);
  m->conn_->ReadEnable(true);
  m->Receive(first_bytes);  // counted in rx_bytes by the HTTP/1 manager already
  // Started during a drain: the streams already sent finish, then GOAWAY ends the connection.
  if (ctx.draining) m->StartDrain();
}

Http2ConnectionManager::Http2ConnectionManager(server::WorkerContext& ctx,
                                               std::shared_ptr<const server::Snapshot> snapshot,
                                               const server::ListenerRuntime& listener,
                                               std::unique_ptr<TcpConnection> downstream)
    : ctx_(ctx),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      conn_(std::move(downstream)),
      codec_(SettingsFor(*listener.config), out_, ctx.dispatcher, *this) {
  conn_->SetCallbacks(this);
  uint32_t limit = listener_.config->buffer_limit_bytes;
  conn_->SetWriteWatermarks(limit / 2, limit);
  peer_host_ = network::PeerHost(conn_->peer());
  timer_ = ctx_.dispatcher.CreateTimer([this] { OnTimer(); });
  send_timer_ = ctx_.dispatcher.CreateTimer([this] { SendOut(); });
  sweep_timer_ = ctx_.dispatcher.CreateTimer([this] { SweepIdleStreams(); });
  UpdateIdleTimer();
}

Http2ConnectionManager::~Http2ConnectionManager() = default;

// ---- socket -------------------------------------------------------------------------------------

void Http2ConnectionManager::OnRead(buffer::Buffer& data) {
  ctx_.stats.Add(listener_.stats.rx_bytes, data.length());
  Receive(data);
}

void Http2ConnectionManager::Receive(buffer::Buffer& data) {
  if (closing_) {
    data.Clear();
    return;
  }
  dispatching_ = true;
  bool ok = codec_.Dispatch(data);
  dispatching_ = false;
  if (finished_) return;
  if (!ok) {
    LOG_DEBUG("HTTP/2 connection error from %s: %s", conn_->peer(), codec_.error_detail());
    closing_ = true;
    conn_->ReadEnable(false);
    timer_->Enable(kCloseFlushTimeout);
  }
  SendOut();
  UpdateIdleTimer();
}

void Http2ConnectionManager::OnEndOfStream() {
  // The client sends nothing more (a half-close): streams whose requests are whole still get
  // their responses; the connection closes when the last stream ends.
  peer_eof_ = true;
  if (CloseIfDone()) SendOut();
}

void Http2ConnectionManager::OnEvent(TcpConnection::Event) { Finish(); }

void Http2ConnectionManager::OnFlushed() {
  // The socket took its whole backlog: frames held back for budget may go now (and a closing
  // connection ends once they are out).
  SendOut();
}

void Http2ConnectionManager::SendOut() {
  if (finished_) return;
  send_timer_->Disable();
  // Until the socket holds the buffer limit (then the low watermark calls again) or the codec
  // has nothing more: a write may go out at once, leaving room without any watermark event.
  uint32_t limit = listener_.config->buffer_limit_bytes;
  while (conn_->write_backlog() < limit) {
    codec_.Send(limit - conn_->write_backlog());
    if (out_.empty()) break;
    ctx_.stats.Add(listener_.stats.tx_bytes, out_.length());
    conn_->Write(out_);
  }
  if (finished_) return;
  if (!closing_ && codec_.WantsClose()) {
    closing_ = true;
    conn_->ReadEnable(false);
    timer_->Enable(kCloseFlushTimeout);
  }
  if (closing_ && conn_->write_backlog() == 0) Finish();
}

void Http2ConnectionManager::OnWantsSend() {
  // Frames queued by an upstream event: batch the turn's frames into one write.
  if (!dispatching_ && !send_timer_->Enabled()) send_timer_->Enable(absl::ZeroDuration());
}

// ---- streams ------------------------------------------------------------------------------------

void Http2ConnectionManager::OnNewStream(Http2ServerCodec::ServerStream& s) {
  auto stream = std::make_unique<Stream>(*this, s);
  Stream* raw = stream.get();
  streams_[s.id()] = std::move(stream);
  if (!draining_ && !closing_) timer_->Disable();  // the idle timer; not drain's PING wait
  if (s.reject_status() != 0) {
    int status = s.reject_status();
    bool grpc = IsGrpc(s.request().headers);
    ResponseHead head;
    buffer::Buffer body = ActiveStream::BuildLocalReply(
        head, grpc, status, status == 431 ? "headers_too_large" : "connect_not_allowed",
        status == 431 ? "request header block over the listener's limits"
                      : "CONNECT is not supported");
    s.EncodeHeaders(head, body.empty());
    if (!body.empty()) s.EncodeData(body, true);
    return;
  }
  s.set_decoder(raw);
}

void Http2ConnectionManager::OnStreamClosed(Http2Codec::Stream& s, uint32_t) {
  auto it = streams_.find(s.id());
  if (it == streams_.end()) return;
  it->second->Detach();
  streams_.erase(it);
  if (CloseIfDone()) return;
  if (!dispatching_) UpdateIdleTimer();
}

void Http2ConnectionManager::OnStreamQueueLimit(Http2Codec::Stream& s, bool above) {
  auto it = streams_.find(s.id());
  if (it == streams_.end() || it->second->active() == nullptr) return;
  if (above) {
    it->second->active()->OnDownstreamAboveHighWatermark();
  } else {
    it->second->active()->OnDownstreamBelowLowWatermark();
  }
}

// ---- timers, drain, close -----------------------------------------------------------------------

void Http2ConnectionManager::ArmIdleSweep() {
  absl::Duration idle = listener_.config->stream_idle_timeout;
  if (idle <= absl::ZeroDuration() || sweep_timer_->Enabled()) return;
  // A stream is ended at most an eighth of the timeout late; the per-stream cost is one time
  // stamp per event instead of a timer started and stopped per stream.
  sweep_timer_->Enable(std::max(idle / 8, absl::Milliseconds(10)));
}

void Http2ConnectionManager::SweepIdleStreams() {
  // Collected first: ending a stream queues frames but may not change streams_ until they go.
  std::vector<ActiveStream*> active;
  std::vector<Http2ServerCodec::ServerStream*> lingering;
  bool any = false;
  absl::Time now = ctx_.dispatcher.Now();
  for (auto& [id, stream] : streams_) {
    if (stream->active() != nullptr) {
      active.push_back(stream->active());
    } else if (stream->codec() != nullptr) {
      if (now - stream->ended_at() >= listener_.config->stream_idle_timeout) {
        lingering.push_back(stream->codec());
      } else {
        any = true;
      }
    }
  }
  for (ActiveStream* a : active) any = !a->CheckIdle() || any;
  for (Http2ServerCodec::ServerStream* s : lingering) s->Reset(NGHTTP2_CANCEL);
  if (any) ArmIdleSweep();
  SendOut();
}

void Http2ConnectionManager::UpdateIdleTimer() {
  if (closing_ || finished_ || draining_) return;
  if (!streams_.empty()) {
    timer_->Disable();
    idle_ = awaiting_header_block_ = false;
    return;
  }
  // No stream: the connection waits for a request, for idle_timeout from when its last stream
  // ended. One whose header block has begun and not ended gets request_header_timeout from
  // then, as on HTTP/1.1 (slowloris; it can send nothing else meanwhile), never past the idle
  // deadline. Streams in progress have their own stream_idle_timeout instead.
  absl::Time now = ctx_.dispatcher.Now();
  bool header = codec_.ReadingHeaderBlock();
  if (idle_ && header == awaiting_header_block_ && timer_->Enabled()) return;
  if (!idle_) {
    idle_ = true;
    idle_since_ = now;
  }
  awaiting_header_block_ = header;
  absl::Duration wait = listener_.config->idle_timeout - (now - idle_since_);
  if (header) wait = std::min(wait, listener_.config->request_header_timeout);
  timer_->Enable(std::max(wait, absl::ZeroDuration()));
}

void Http2ConnectionManager::OnTimer() {
  if (closing_) {
    Finish();  // the close-flush deadline
    return;
  }
  if (draining_ && !goaway_sent_) {
    SendGoaway();  // the client did not answer the PING in time
    return;
  }
  if (streams_.empty()) {
    // Idle: a GOAWAY tells the client not to send more; the connection closes once it is out.
    if (awaiting_header_block_) {
      LOG_DEBUG("HTTP/2 client %s sent no whole header block within request_header_timeout",
                conn_->peer());
    }
    draining_ = true;
    SendGoaway();
  }
}

void Http2ConnectionManager::StartDrain() {
  if (draining_ || closing_) return;
  draining_ = true;
  codec_.SubmitShutdownNotice();
  codec_.SubmitPing();
  timer_->Enable(kGoawayPingWait);
  SendOut();
}

void Http2ConnectionManager::OnPingAck() {
  if (draining_ && !goaway_sent_) SendGoaway();
}

void Http2ConnectionManager::SendGoaway() {
  goaway_sent_ = true;
  timer_->Disable();
  codec_.SubmitGoaway(NGHTTP2_NO_ERROR);
  CloseIfDone();
  if (!dispatching_) SendOut();
}

bool Http2ConnectionManager::CloseIfDone() {
  // No stream will start any more (the client half-closed, or the final GOAWAY is out): once the
  // last one is over, so is the connection. nghttp2 alone would wait for the client to close,
  // and forever for a header block the client never finishes (its stream counts as open).
  if (closing_ || !streams_.empty() || !(peer_eof_ || goaway_sent_)) return false;
  closing_ = true;
  conn_->ReadEnable(false);
  timer_->Enable(kCloseFlushTimeout);  // Finish once the last frames are out (SendOut)
  return true;
}

void Http2ConnectionManager::CloseNow() { Finish(); }

void Http2ConnectionManager::Finish() {
  if (finished_) return;
  finished_ = true;
  codec_.CloseAllStreams(NGHTTP2_CANCEL);
  timer_.reset();
  send_timer_.reset();
  sweep_timer_.reset();
  conn_->Close(TcpConnection::CloseMode::kNow);
  ctx_.stats.AddSigned(listener_.stats.cx_active, -1);
  ctx_.connections.Remove(this);
  ctx_.dispatcher.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

}  // namespace remora::http
