#include "proxy/http/http2_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/block_cache.h"

namespace remora::http {

namespace {

bool IsInformational(int status) { return status >= 100 && status < 200 && status != 101; }

// nghttp2's allocations (its streams, frames, header buffers: several per request) come from the
// block cache. nghttp2 frees by pointer alone, so a 16-byte header in front of each block (keeping
// it 16-aligned) holds the size.
constexpr size_t kHeader = 16;

void* NgMalloc(size_t size, void*) {
  char* p;
  try {
    p = static_cast<char*>(mem::Allocate(size + kHeader));
  } catch (const std::bad_alloc&) {
    return nullptr;  // nghttp2 answers NGHTTP2_ERR_NOMEM
  }
  std::memcpy(p, &size, sizeof size);
  return p + kHeader;
}

size_t BlockSize(void* ptr) {
  size_t size;
  std::memcpy(&size, static_cast<char*>(ptr) - kHeader, sizeof size);
  return size;
}

void NgFree(void* ptr, void*) {
  if (ptr != nullptr) mem::Free(static_cast<char*>(ptr) - kHeader, BlockSize(ptr) + kHeader);
}

void* NgCalloc(size_t n, size_t size, void* ud) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = NgMalloc(n * size, ud);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* NgRealloc(void* ptr, size_t size, void* ud) {
  if (ptr == nullptr) return NgMalloc(size, ud);
  void* p = NgMalloc(size, ud);
  if (p == nullptr) return nullptr;  // the old block stays the caller's
  std::memcpy(p, ptr, std::min(BlockSize(ptr), size));
  NgFree(ptr, ud);
  return p;
}

nghttp2_mem* CachedNghttp2Mem() {
  static nghttp2_mem mem = {nullptr, &NgMalloc, &NgFree, &NgCalloc, &NgRealloc};
  return &mem;
}

}  // namespace

// ---- nghttp2 callbacks --------------------------------------------------------------------------

struct Http2Codec::Glue {
  static Http2Codec* Self(void* user_data) { return static_cast<Http2Codec*>(user_data); }
  static Stream* StreamOf(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static ssize_t OnSend(nghttp2_session*, const uint8_t* data, size_t length, int,
                        void* user_data) {
    Http2Codec* c = Self(user_data);
    if (c->out_.length() >= c->send_limit_) return NGHTTP2_ERR_WOULDBLOCK;
    c->out_.Append(absl::string_view(reinterpret_cast<const char*>(data), length));
    return static_cast<ssize_t>(length);
  }

  static int OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                        size_t length, nghttp2_data_source* source, void* user_data) {
    Http2Codec* c = Self(user_data);
    // Never WOULDBLOCK here: the payload length was fixed by ReadBody, which is where the
    // output budget holds DATA back.
    auto* s = static_cast<Stream*>(source->ptr);
    c->out_.Append(absl::string_view(reinterpret_cast<const char*>(framehd), 9));
    // No padding is ever asked for (no select_padding callback), so padlen is 0.
    s->out_body_.MoveFront(c->out_, length);
    (void)frame;
    if (s->above_limit_ && s->out_body_.length() <= c->settings_.stream_buffer_limit / 2) {
      s->above_limit_ = false;
      c->callbacks_.OnStreamQueueLimit(*s, false);
    }
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t*, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
    Http2Codec* c = Self(user_data);
    auto* s = static_cast<Stream*>(source->ptr);
    size_t n = std::min(length, s->out_body_.length());
    if (n == 0 && !s->out_end_) {
      s->data_deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (c->out_.length() >= c->send_limit_) {
      // The socket has enough for now: this stream goes on at the next Send().
      s->data_deferred_ = true;
      c->budget_deferred_.push_back(stream_id);
      return NGHTTP2_ERR_DEFERRED;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->out_end_ && n == s->out_body_.length()) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->out_trailers_pending_) {
        s->out_trailers_pending_ = false;
        c->ResetNv();
        c->AppendFields(s->out_trailers_, true);
        if (nghttp2_submit_trailer(session, stream_id, c->FinishNv(), c->nva_.size()) == 0) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
    }
    return static_cast<ssize_t>(n);
  }

  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Http2Codec* c = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    int32_t id = frame->hd.stream_id;
    Stream* s = StreamOf(session, id);
    if (s == nullptr) {
      if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
      s = c->NewStream(id);
      if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      s->id_ = id;
      c->Link(s);
      nghttp2_session_set_stream_user_data(session, id, s);
      return 0;
    }
    s->header_bytes_ = s->header_count_ = 0;
    if (s->in_headers_done_) {
      s->in_trailers_block_ = true;
      s->in_trailers_.Clear();
    } else {
      s->head().Clear();  // the final response after a 1xx
      s->cookies_.clear();
    }
    return 0;
  }

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    Http2Codec* c = Self(user_data);
    Stream* s = StreamOf(session, frame->hd.stream_id);
    if (s == nullptr) return 0;
    absl::string_view n(reinterpret_cast<const char*>(name), namelen);
    absl::string_view v(reinterpret_cast<const char*>(value), valuelen);
    // Counted as the fields arrive, like HTTP/1: a block over the limits is not kept.
    s->header_bytes_ += static_cast<uint32_t>(namelen + valuelen);
    ++s->header_count_;
    if (s->header_bytes_ > c->settings_.header_limits.max_bytes ||
        s->header_count_ > c->settings_.header_limits.max_count) {
      if (!c->server_) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
      s->headers_too_large_ = true;
      return 0;
    }
    if (s->headers_too_large_) return 0;
    if (s->in_trailers_block_) {
      s->in_trailers_.Add(n, v);
      return 0;
    }
    MessageHead& head = s->head();
    if (!n.empty() && n[0] == ':') {
      s->OnPseudoHeader(n, v);
      return 0;
    }
    if (n == "cookie") {
      if (!s->cookies_.empty()) s->cookies_.append("; ");
      s->cookies_.append(v.data(), v.size());
    } else if (n == "content-length") {
      uint64_t len = 0;
      if (absl::SimpleAtoi(v, &len)) {  // nghttp2 has checked it against the DATA
        head.framing = Framing::kContentLength;
        head.content_length = len;
      }
    } else if (n == "host" && c->server_) {
      auto& r = static_cast<RequestHead&>(head);
      if (r.authority.empty()) r.authority.assign(v.data(), v.size());
    } else {
      head.headers.Add(n, v);
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data) {
    Http2Codec* c = Self(user_data);
    // The connection window comes back at once: one stalled stream must not stop the others.
    nghttp2_session_consume_connection(session, len);
    Stream* s = StreamOf(session, stream_id);
    if (s == nullptr) return 0;
    if (s->read_disabled_) {
      s->unconsumed_ += len;
    } else {
      nghttp2_session_consume_stream(session, stream_id, len);
    }
    const char* p = reinterpret_cast<const char*>(data);
    const buffer::Slice* cur = c->current_;
    if (cur != nullptr && p >= cur->data() && p + len <= cur->data() + cur->size()) {
      s->in_body_.Append(cur->Sub(static_cast<size_t>(p - cur->data()), len));
    } else {
      s->in_body_.Append(absl::string_view(p, len));
    }
    return 0;
  }

  static int OnBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data) {
    // A new frame (other than a CONTINUATION) also means the last header block was over, even
    // one nghttp2 dropped without a callback (HEADERS on a stream it had closed).
    if (hd->type != NGHTTP2_CONTINUATION) {
      Self(user_data)->reading_header_block_ = hd->type == NGHTTP2_HEADERS;
    }
    return 0;
  }

  static int OnInvalidFrameRecv(nghttp2_session*, const nghttp2_frame*, int, void* user_data) {
    Self(user_data)->reading_header_block_ = false;
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Http2Codec* c = Self(user_data);
    c->reading_header_block_ = false;  // a frame (a header block with its CONTINUATIONs) is whole
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = StreamOf(session, frame->hd.stream_id);
        if (s == nullptr) return 0;
        if (end) s->remote_complete_ = true;
        if (s->in_trailers_block_) {
          s->in_trailers_block_ = false;
          s->DeliverTrailers(s->in_trailers_);
          return 0;
        }
        if (!s->cookies_.empty()) s->head().headers.Add("cookie", s->cookies_);
        s->OnHeadersDone(end);
        return 0;
      }
      case NGHTTP2_DATA: {
        Stream* s = StreamOf(session, frame->hd.stream_id);
        if (s == nullptr) return 0;
        if (end) s->remote_complete_ = true;
        if (s->in_body_.empty() && !end) return 0;
        buffer::Buffer data = std::move(s->in_body_);
        s->DeliverData(data, end);
        return 0;
      }
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) c->callbacks_.OnPingAck();
        return 0;
      case NGHTTP2_GOAWAY:
        c->OnGoawayReceived(frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
      default:
        return 0;
    }
  }

  static int OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    Http2Codec* c = Self(user_data);
    Stream* s = StreamOf(session, stream_id);
    if (s == nullptr) return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
    c->CloseStream(s, error_code);
    return 0;
  }

  static int OnError(nghttp2_session*, int, const char* msg, size_t len, void* user_data) {
    Self(user_data)->error_detail_.assign(msg, len);
    return 0;
  }

  static const nghttp2_session_callbacks* Callbacks() {
    static const nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_send_callback(c, &OnSend);
      nghttp2_session_callbacks_set_send_data_callback(c, &OnSendData);
      nghttp2_session_callbacks_set_on_begin_headers_callback(c, &OnBeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(c, &OnHeader);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &OnDataChunk);
      nghttp2_session_callbacks_set_on_frame_recv_callback(c, &OnFrameRecv);
      nghttp2_session_callbacks_set_on_begin_frame_callback(c, &OnBeginFrame);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, &OnInvalidFrameRecv);
      nghttp2_session_callbacks_set_on_stream_close_callback(c, &OnStreamClose);
      nghttp2_session_callbacks_set_error_callback2(c, &OnError);
      return c;  // shared, read-only, for the life of the process
    }();
    return cbs;
  }
};

// ---- the session --------------------------------------------------------------------------------

Http2Codec::Http2Codec(bool server, const Http2Settings& settings, buffer::Buffer& out,
                       event::Dispatcher& dispatcher, Callbacks& callbacks)
    : settings_(settings),
      out_(out),
      dispatcher_(dispatcher),
      callbacks_(callbacks),
      server_(server) {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Windows are returned as bytes are taken (backpressure), not as they arrive.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, 8);
  if (server) {
    nghttp2_option_set_stream_reset_rate_limit(opt, settings.reset_burst, settings.reset_rate);
    nghttp2_option_set_max_outbound_ack(opt, 1000);  // PING/SETTINGS floods
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_session_server_new3(&session_, Glue::Callbacks(), this, opt, CachedNghttp2Mem());
  } else {
    nghttp2_option_set_peer_max_concurrent_streams(opt, settings.max_concurrent_streams);
    nghttp2_session_client_new3(&session_, Glue::Callbacks(), this, opt, CachedNghttp2Mem());
  }
  nghttp2_option_del(opt);
  nghttp2_settings_entry iv[4];
  size_t n = 0;
  if (server) {
    iv[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams};
  } else {
    iv[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  }
  iv[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.initial_stream_window};
  iv[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.header_limits.max_bytes};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, n);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(settings.connection_window));
}

Http2Codec::~Http2Codec() {
  nghttp2_session_del(session_);
  // Owners were told already (CloseAllStreams); what is left only needs freeing.
  while (streams_ != nullptr) {
    Stream* s = streams_;
    streams_ = s->next_;
    delete s;
  }
}

void Http2Codec::Link(Stream* s) {
  s->next_ = streams_;
  if (streams_ != nullptr) streams_->prev_ = s;
  streams_ = s;
  ++active_streams_;
}

void Http2Codec::CloseStream(Stream* s, uint32_t error_code) {
  if (s->prev_ != nullptr) s->prev_->next_ = s->next_;
  if (s->next_ != nullptr) s->next_->prev_ = s->prev_;
  if (streams_ == s) streams_ = s->next_;
  s->prev_ = s->next_ = nullptr;
  s->closed_ = true;
  --active_streams_;
  callbacks_.OnStreamClosed(*s, error_code);
  dispatcher_.DeferredDelete(std::unique_ptr<event::DeferredDeletable>(s));
}

void Http2Codec::CloseAllStreams(uint32_t error_code) {
  fatal_ = true;
  while (streams_ != nullptr) {
    Stream* s = streams_;
    if (s->id_ >= 0) nghttp2_session_set_stream_user_data(session_, s->id_, nullptr);
    CloseStream(s, error_code);
  }
}

bool Http2Codec::Dispatch(buffer::Buffer& in) {
  if (fatal_) {
    in.Clear();
    return false;
  }
  in_codec_ = true;
  for (size_t i = 0; i < in.slice_count() && !fatal_; ++i) {
    const buffer::Slice& slice = in.slice(i);
    current_ = &slice;
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(slice.data()),
                                          slice.size());
    current_ = nullptr;
    if (rv < 0) {
      fatal_ = true;
      if (error_detail_.empty()) error_detail_ = nghttp2_strerror(static_cast<int>(rv));
      // Most errors have queued their GOAWAY already; make sure one goes.
      nghttp2_session_terminate_session(
          session_, rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    }
  }
  in_codec_ = false;
  in.Clear();
  return !fatal_;
}

void Http2Codec::Send(size_t budget) {
  in_codec_ = true;
  send_limit_ = out_.length() + budget;
  if (budget > 0 && !budget_deferred_.empty()) {
    std::vector<int32_t> ids = std::move(budget_deferred_);
    budget_deferred_.clear();
    for (int32_t id : ids) {
      Stream* s = Glue::StreamOf(session_, id);
      if (s == nullptr || !s->data_deferred_) continue;
      s->data_deferred_ = false;
      nghttp2_session_resume_data(session_, id);
    }
  }
  int rv = nghttp2_session_send(session_);
  in_codec_ = false;
  if (rv != 0 && rv != NGHTTP2_ERR_WOULDBLOCK) fatal_ = true;
}

bool Http2Codec::WantsClose() const {
  return fatal_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

bool Http2Codec::WantsRead() const { return !fatal_ && nghttp2_session_want_read(session_); }

void Http2Codec::Queued() {
  if (!in_codec_) callbacks_.OnWantsSend();
}

void Http2Codec::SubmitShutdownNotice() {
  nghttp2_submit_shutdown_notice(session_);
  Queued();
}

void Http2Codec::SubmitGoaway(uint32_t error_code) {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code, nullptr, 0);
  Queued();
}

void Http2Codec::SubmitPing() {
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  Queued();
}

void Http2Codec::ResetNv() {
  nva_.clear();
  nv_storage_.clear();
  nv_offsets_.clear();
}

void Http2Codec::AddNv(absl::string_view name, absl::string_view value) {
  size_t off = nv_storage_.size();
  nv_storage_.resize(off + name.size() + value.size());
  char* p = nv_storage_.data() + off;
  for (char c : name) *p++ = absl::ascii_tolower(static_cast<unsigned char>(c));
  std::memcpy(p, value.data(), value.size());
  nv_offsets_.push_back(off);
  nva_.push_back(nghttp2_nv{nullptr, nullptr, name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
}

const nghttp2_nv* Http2Codec::FinishNv() {
  // Pointers only now: the storage may have moved while it grew.
  auto* base = reinterpret_cast<uint8_t*>(nv_storage_.data());
  for (size_t i = 0; i < nva_.size(); ++i) {
    nva_[i].name = base + nv_offsets_[i];
    nva_[i].value = base + nv_offsets_[i] + nva_[i].namelen;
  }
  return nva_.data();
}

void Http2Codec::AppendFields(const HeaderMap& fields, bool trailers) {
  for (size_t i = 0; i < fields.size(); ++i) {
    absl::string_view name = fields.name(i);
    // The HTTP/1 codec takes hop-by-hop fields out already, but a filter or a route may add
    // one; only `te: trailers` crosses into HTTP/2, and Host travels as :authority.
    bool te_trailers = !trailers && IEquals(name, "te") && IEquals(fields.value(i), "trailers");
    if ((IsHopByHop(name) && !te_trailers) || IEquals(name, "host")) continue;
    AddNv(name, fields.value(i));
  }
}

// ---- streams ------------------------------------------------------------------------------------

void Http2Codec::Stream::ReadDisable(bool disabled) {
  read_disabled_ = disabled;
  if (disabled || unconsumed_ == 0 || closed_) return;
  nghttp2_session_consume_stream(codec_.session_, id_, unconsumed_);
  unconsumed_ = 0;
  codec_.Queued();
}

void Http2Codec::Stream::Reset(uint32_t error_code) {
  if (closed_ || id_ < 0) return;
  nghttp2_submit_rst_stream(codec_.session_, NGHTTP2_FLAG_NONE, id_, error_code);
  codec_.Queued();
}

nghttp2_data_provider Http2Codec::Stream::DataProvider() {
  nghttp2_data_provider p;
  p.source.ptr = this;
  p.read_callback = &Glue::ReadBody;
  return p;
}

void Http2Codec::Stream::QueueBody(buffer::Buffer& data, bool end_stream) {
  // Bytes usually leave within this loop turn. Behind a closed window or a full socket they
  // wait: small slices of shared read slabs are then copied out, so a stalled stream does not
  // pin 64 KiB slabs for a few bytes each.
  if (out_body_.empty()) {
    out_body_.Move(data);
  } else {
    out_body_.MoveCompacting(data);
  }
  out_end_ = out_end_ || end_stream;
  if (data_deferred_ && id_ >= 0 && !closed_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(codec_.session_, id_);
  }
  codec_.Queued();
  if (!above_limit_ && out_body_.length() > codec_.settings_.stream_buffer_limit) {
    above_limit_ = true;
    codec_.callbacks_.OnStreamQueueLimit(*this, true);
  }
}

void Http2Codec::Stream::QueueTrailers(const HeaderMap& trailers) {
  out_trailers_ = trailers;
  out_trailers_pending_ = !trailers.empty();
  buffer::Buffer none;
  QueueBody(none, true);
}

// ---- server -------------------------------------------------------------------------------------

Http2ServerCodec::Http2ServerCodec(const Http2Settings& settings, buffer::Buffer& out,
                                   event::Dispatcher& dispatcher, ServerCallbacks& callbacks)
    : Http2Codec(true, settings, out, dispatcher, callbacks), server_callbacks_(callbacks) {}

Http2Codec::Stream* Http2ServerCodec::NewStream(int32_t) { return new ServerStream(*this); }

void Http2ServerCodec::ServerStream::OnPseudoHeader(absl::string_view name,
                                                    absl::string_view value) {
  if (name == ":method") {
    request_.method.assign(value.data(), value.size());
  } else if (name == ":path") {
    request_.path.assign(value.data(), value.size());
  } else if (name == ":authority") {
    request_.authority.assign(value.data(), value.size());
  }
  // :scheme is not kept: the hop to the upstream has its own.
}

void Http2ServerCodec::ServerStream::OnHeadersDone(bool end_stream) {
  in_headers_done_ = true;
  request_.version_minor = 1;
  request_.keep_alive = true;
  if (request_.framing != Framing::kContentLength) {
    request_.framing = end_stream ? Framing::kNone : Framing::kChunked;
  }
  if (headers_too_large_) reject_status_ = 431;
  if (request_.method == "CONNECT") reject_status_ = 405;
  server_.server_callbacks_.OnNewStream(*this);
  if (reject_status_ == 0 && decoder_ != nullptr) decoder_->OnHeaders(request_, end_stream);
}

void Http2ServerCodec::ServerStream::DeliverData(buffer::Buffer& data, bool end_stream) {
  if (decoder_ != nullptr) decoder_->OnData(data, end_stream);
}

void Http2ServerCodec::ServerStream::DeliverTrailers(HeaderMap& trailers) {
  if (decoder_ != nullptr) decoder_->OnTrailers(trailers);
}

void Http2ServerCodec::ServerStream::EncodeInformational(const ResponseHead& head) {
  if (closed_ || response_headers_sent_ || !IsInformational(head.status)) return;
  server_.ResetNv();
  server_.AddNv(":status", absl::StrCat(head.status));
  server_.AppendFields(head.headers, false);
  nghttp2_submit_headers(server_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, server_.FinishNv(),
                         server_.nva_.size(), nullptr);
  server_.Queued();
}

void Http2ServerCodec::ServerStream::EncodeHeaders(const ResponseHead& head, bool end_stream) {
  if (closed_ || response_headers_sent_) return;
  response_headers_sent_ = true;
  // A response to HEAD has no body (RFC 9110 9.3.2), whatever is offered after its head (a local
  // reply's text); its content-length, if any, stays as given.
  if (request_.method == "HEAD") {
    end_stream = true;
    bodyless_ = true;
  }
  server_.ResetNv();
  server_.AddNv(":status", absl::StrCat(head.status));
  server_.AppendFields(head.headers, false);
  if (head.framing == Framing::kContentLength && !end_stream &&
      !head.headers.Has("content-length")) {
    server_.AddNv("content-length", absl::StrCat(head.content_length));
  }
  out_end_ = end_stream;
  nghttp2_data_provider provider = DataProvider();
  nghttp2_submit_response(server_.session_, id_, server_.FinishNv(), server_.nva_.size(),
                          end_stream ? nullptr : &provider);
  server_.Queued();
}

void Http2ServerCodec::ServerStream::EncodeData(buffer::Buffer& data, bool end_stream) {
  if (closed_ || bodyless_) return data.Clear();
  QueueBody(data, end_stream);
}

void Http2ServerCodec::ServerStream::EncodeTrailers(const HeaderMap& trailers) {
  if (closed_ || bodyless_) return;
  QueueTrailers(trailers);
}

// ---- client -------------------------------------------------------------------------------------

Http2ClientCodec::Http2ClientCodec(const Http2Settings& settings, buffer::Buffer& out,
                                   event::Dispatcher& dispatcher, ClientCallbacks& callbacks)
    : Http2Codec(false, settings, out, dispatcher, callbacks), client_callbacks_(callbacks) {}

Http2ClientCodec::ClientStream* Http2ClientCodec::NewClientStream() {
  return new ClientStream(*this);
}

uint32_t Http2ClientCodec::available_streams() const {
  uint32_t max =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (!nghttp2_session_check_request_allowed(session_)) return 0;
  return max > active_streams_ ? static_cast<uint32_t>(max - active_streams_) : 0;
}

void Http2ClientCodec::ClientStream::OnPseudoHeader(absl::string_view name,
                                                    absl::string_view value) {
  if (name == ":status") {
    int status = 0;
    if (absl::SimpleAtoi(value, &status)) response_.status = status;
  }
}

void Http2ClientCodec::ClientStream::EncodeHeaders(const RequestHead& head, bool end_stream) {
  Http2ClientCodec& c = client_;
  c.ResetNv();
  c.AddNv(":method", head.method);
  c.AddNv(":scheme", "http");
  if (!head.authority.empty()) c.AddNv(":authority", head.authority);
  c.AddNv(":path", head.path);
  c.AppendFields(head.headers, false);
  if (head.framing == Framing::kContentLength) {
    c.AddNv("content-length", absl::StrCat(head.content_length));
  }
  // HTTP/1 clients' TE is gone (hop-by-hop); gRPC needs it on HTTP/2.
  if (!head.headers.Has("te") && IsGrpc(head.headers)) {
    c.AddNv("te", "trailers");
  }
  out_end_ = end_stream;
  nghttp2_data_provider provider = DataProvider();
  int32_t id = nghttp2_submit_request(c.session_, nullptr, c.FinishNv(), c.nva_.size(),
                                      end_stream ? nullptr : &provider, this);
  c.Link(this);
  if (id < 0) {
    // The session takes no new streams (GOAWAY received, ids exhausted): never sent.
    c.CloseStream(this, NGHTTP2_REFUSED_STREAM);
    return;
  }
  id_ = id;
  c.Queued();
}

void Http2ClientCodec::ClientStream::EncodeData(buffer::Buffer& data, bool end_stream) {
  if (closed_) return data.Clear();
  QueueBody(data, end_stream);
}

void Http2ClientCodec::ClientStream::EncodeTrailers(const HeaderMap& trailers) {
  if (closed_) return;
  QueueTrailers(trailers);
}

void Http2ClientCodec::ClientStream::OnHeadersDone(bool end_stream) {
  if (decoder_ == nullptr) return;
  if (IsInformational(response_.status)) {
    decoder_->OnInformational(response_);
    return;
  }
  in_headers_done_ = true;
  response_started_ = true;
  response_.version_minor = 1;
  response_.keep_alive = true;
  if (response_.framing != Framing::kContentLength) {
    response_.framing = end_stream ? Framing::kNone : Framing::kChunked;
  }
  decoder_->OnHeaders(response_, end_stream);
}

void Http2ClientCodec::ClientStream::DeliverData(buffer::Buffer& data, bool end_stream) {
  if (decoder_ != nullptr) decoder_->OnData(data, end_stream);
}

void Http2ClientCodec::ClientStream::DeliverTrailers(HeaderMap& trailers) {
  if (decoder_ != nullptr) decoder_->OnTrailers(trailers);
}

}  // namespace remora::http
