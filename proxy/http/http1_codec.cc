#include "proxy/http/http1_codec.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/http/status.h"

namespace remora::http {
namespace {

void AppendHeaders(std::string& out, const HeaderMap& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    absl::string_view n = headers.name(i), v = headers.value(i);
    out.append(n.data(), n.size());
    out.append(": ");
    out.append(v.data(), v.size());
    out.append("\r\n");
  }
}

void AppendChunkHeader(buffer::Buffer& out, size_t n) {
  char line[20];
  int len = 0;
  char digits[16];
  int d = 0;
  do {
    digits[d++] = "0123456789abcdef"[n & 0xf];
    n >>= 4;
  } while (n != 0);
  while (d > 0) line[len++] = digits[--d];
  line[len++] = '\r';
  line[len++] = '\n';
  out.Append(absl::string_view(line, static_cast<size_t>(len)));
}

// The body framing both codecs write: chunks when `chunked`, else the bytes as they are.
void EncodeBody(buffer::Buffer& out, buffer::Buffer& data, bool end_stream, bool chunked) {
  if (!chunked) {
    out.Move(data);
    return;
  }
  if (!data.empty()) {
    AppendChunkHeader(out, data.length());
    out.Move(data);
    out.Append("\r\n");
  }
  if (end_stream) out.Append("0\r\n\r\n");
}

// Trailers end a chunked body; any other body cannot carry them, and they are dropped (RFC 9110
// 6.5.1 lets a recipient discard them).
void EncodeTrailerFields(buffer::Buffer& out, std::string& scratch, const HeaderMap& trailers,
                         bool chunked) {
  if (!chunked) return;
  scratch = "0\r\n";
  AppendHeaders(scratch, trailers);
  scratch.append("\r\n");
  out.Append(scratch);
}

// Every Transfer-Encoding field lists only `chunked` (or there is none).
bool OnlyChunked(const HeaderMap& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!IEquals(headers.name(i), "transfer-encoding")) continue;
    bool ok = true;
    ForEachToken(headers.value(i), [&](absl::string_view t) {
      ok = IEquals(t, "chunked");
      return ok;
    });
    if (!ok) return false;
  }
  return true;
}

bool BodylessStatus(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace

// ---- Http1Parser ----------------------------------------------------------------------------

const llhttp_settings_t* Http1Parser::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = [](llhttp_t* p) {
      Http1Parser* self = Self(p);
      self->message_started_ = true;
      self->headers_done_ = false;
      self->header_bytes_ = 0;
      self->header_count_ = 0;
      self->trailers_.Clear();
      self->body_.Clear();
      self->ended_at_headers_ = false;
      self->OnMessageBegin();
      return 0;
    };
    s.on_url = [](llhttp_t* p, const char* at, size_t n) {
      Http1Parser* self = Self(p);
      if (int rc = self->CountBytes(n); rc != 0) return rc;
      static_cast<Http1ServerCodec*>(self)->request().path.append(at, n);
      return 0;
    };
    s.on_status = [](llhttp_t* p, const char* at, size_t n) {
      Http1Parser* self = Self(p);
      if (int rc = self->CountBytes(n); rc != 0) return rc;
      static_cast<Http1ClientCodec*>(self)->response().reason.append(at, n);
      return 0;
    };
    s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      Http1Parser* self = Self(p);
      self->value_open_ = false;
      if (int rc = self->CountBytes(n); rc != 0) return rc;
      (self->headers_done_ ? self->trailers_ : self->head_headers()).AppendName({at, n});
      return 0;
    };
    s.on_header_field_complete = [](llhttp_t* p) {
      Http1Parser* self = Self(p);
      (self->headers_done_ ? self->trailers_ : self->head_headers()).FinishName();
      if (++self->header_count_ > self->limits_.max_count) {
        return self->Fail(431,
                          absl::StrCat("more than ", self->limits_.max_count, " header fields"));
      }
      return 0;
    };
    s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      return Self(p)->OnHeaderValuePiece(at, n);
    };
    s.on_header_value_complete = [](llhttp_t* p) {
      Self(p)->value_open_ = false;
      return 0;
    };
    s.on_headers_complete = [](llhttp_t* p) {
      Http1Parser* self = Self(p);
      self->headers_done_ = true;
      int rc = self->OnHeadersComplete();
      return self->stopped_ ? -1 : rc;
    };
    s.on_body = [](llhttp_t* p, const char* at, size_t n) {
      Http1Parser* self = Self(p);
      self->body_.Append(self->current_->Sub(static_cast<size_t>(at - self->current_->data()), n));
      return 0;
    };
    s.on_message_complete = [](llhttp_t* p) {
      Http1Parser* self = Self(p);
      self->message_started_ = false;
      if (!self->trailers_.empty()) {
        if (!self->body_.empty()) self->DeliverData(self->body_, false);
        self->DeliverTrailers(self->trailers_);
      } else if (!(self->ended_at_headers_ && self->body_.empty())) {
        // A message whose end was told with its head has nothing more to say.
        self->DeliverData(self->body_, true);
      }
      if (self->stopped_) return -1;
      // An upgrade pauses by itself (HPE_PAUSED_UPGRADE) right after this callback; an
      // interim (1xx) response is followed by the real one without a pause.
      if (p->upgrade || self->InterimMessage()) return 0;
      return static_cast<int>(HPE_PAUSED);
    };
    return s;
  }();
  return &settings;
}

Http1Parser::Http1Parser(llhttp_type_t type, HeaderLimits limits) : limits_(limits) {
  llhttp_init(&parser_, type, Settings());
  parser_.data = this;
}

bool Http1Parser::EndsAtHeaders(const MessageHead& head) {
  ended_at_headers_ = head.framing == Framing::kNone ||
                      (head.framing == Framing::kContentLength && head.content_length == 0);
  return ended_at_headers_;
}

int Http1Parser::Fail(int status, std::string detail) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_detail_ = std::move(detail);
  }
  return -1;
}

int Http1Parser::CountBytes(size_t n) {
  header_bytes_ += n;
  if (header_bytes_ > limits_.max_bytes) {
    return Fail(431, absl::StrCat("header block larger than ", limits_.max_bytes, " bytes"));
  }
  return 0;
}

int Http1Parser::OnHeaderValuePiece(const char* at, size_t n) {
  if (int rc = CountBytes(n); rc != 0) return rc;
  // llhttp accepts obs-fold (RFC 9112 5.2: a server must reject or replace it; a proxy must not
  // forward it): it continues the value in a new piece that starts after the CRLF and the
  // whitespace. Pieces of one value are otherwise contiguous in the input, even when split
  // across reads, so a gap between two pieces of one value is a fold.
  uint64_t start = consumed_ + static_cast<uint64_t>(at - current_->data());
  if ((value_open_ && start != value_end_) || std::memchr(at, '\r', n) != nullptr ||
      std::memchr(at, '\n', n) != nullptr) {
    return Fail(400, "obsolete line folding in a header field");
  }
  value_open_ = true;
  value_end_ = start + n;
  (headers_done_ ? trailers_ : head_headers()).AppendValue({at, n});
  return 0;
}

DispatchResult Http1Parser::Dispatch(buffer::Buffer& in) {
  if (paused_) return DispatchResult::kMessageComplete;
  if (error_status_ != 0) return DispatchResult::kError;
  while (in.slice_count() > 0) {
    const buffer::Slice& slice = in.slice(0);
    current_ = &slice;
    in_execute_ = true;
    llhttp_errno_t err = llhttp_execute(&parser_, slice.data(), slice.size());
    in_execute_ = false;
    size_t consumed = slice.size();
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - slice.data());
    }
    if (err == HPE_OK && !body_.empty() && !stopped_) DeliverData(body_, false);
    current_ = nullptr;
    consumed_ += consumed;
    in.Drain(consumed);
    if (stopped_) return DispatchResult::kStopped;
    if (err == HPE_OK) continue;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      paused_ = true;
      if (resume_early_) {
        // The decoder finished with the message inside the callbacks (a local reply): go on.
        resume_early_ = false;
        Resume();
        continue;
      }
      return err == HPE_PAUSED ? DispatchResult::kMessageComplete : DispatchResult::kUpgrade;
    }
    if (error_status_ == 0) {
      error_status_ = 400;
      error_detail_ = llhttp_get_error_reason(&parser_);
    }
    return DispatchResult::kError;
  }
  return DispatchResult::kNeedMore;
}

void Http1Parser::Resume() {
  if (in_execute_) {
    resume_early_ = true;
    return;
  }
  if (!paused_) return;
  paused_ = false;
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) {
    llhttp_resume_after_upgrade(&parser_);
  } else {
    llhttp_resume(&parser_);
  }
}

Http1Parser::ConnectionTokens Http1Parser::StripHopByHop(HeaderMap& headers) {
  ConnectionTokens tokens;
  // Names listed in Connection are hop-by-hop too. The values stay readable while fields are
  // removed: removal does not move the storage.
  absl::string_view listed[16];
  size_t nlisted = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!IEquals(headers.name(i), "connection")) continue;
    ForEachToken(headers.value(i), [&](absl::string_view t) {
      if (IEquals(t, "close")) {
        tokens.close = true;
      } else if (IEquals(t, "keep-alive")) {
        tokens.keep_alive = true;
      } else if (IEquals(t, "upgrade")) {
        tokens.upgrade = true;
      } else if (nlisted < std::size(listed)) {
        listed[nlisted++] = t;
      }
      return true;
    });
  }
  for (size_t i = headers.size(); i-- > 0;) {
    absl::string_view name = headers.name(i);
    bool drop = IsHopByHop(name) || IEquals(name, "content-length");
    for (size_t j = 0; !drop && j < nlisted; ++j) drop = IEquals(name, listed[j]);
    if (drop) headers.RemoveAt(i);
  }
  return tokens;
}

// ---- Http1ServerCodec -----------------------------------------------------------------------

Http1ServerCodec::Http1ServerCodec(HeaderLimits limits, buffer::Buffer& out)
    : Http1Parser(HTTP_REQUEST, limits), out_(out) {}

void Http1ServerCodec::OnMessageBegin() {
  request_.Clear();
  response_chunked_ = false;
  response_bodyless_ = false;
  response_keep_alive_ = true;
}

int Http1ServerCodec::OnHeadersComplete() {
  RequestHead& r = request_;
  if (parser_.http_major != 1) {
    return Fail(505, absl::StrCat("HTTP/", parser_.http_major, ".", parser_.http_minor,
                                  " on an HTTP/1 connection"));
  }
  r.version_minor = static_cast<uint8_t>(parser_.http_minor);
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  if (parser_.method == HTTP_CONNECT) return Fail(405, "CONNECT is not enabled");

  HeaderMap& h = r.headers;
  size_t hosts = h.Count("host");
  if (hosts > 1) return Fail(400, "more than one Host field");
  if (r.version_minor == 0 && h.Has("transfer-encoding")) {
    return Fail(400, "Transfer-Encoding on an HTTP/1.0 request");
  }
  // The request target (RFC 9112 3.2).
  if (r.path == "*") {
    if (parser_.method != HTTP_OPTIONS)
      return Fail(400, "asterisk-form target on a non-OPTIONS request");
  } else if (r.path.empty() || r.path[0] != '/') {
    // absolute-form: the authority comes from the target, not from Host (RFC 9112 3.2.2).
    size_t sep = r.path.find("://");
    absl::string_view scheme = absl::string_view(r.path).substr(0, sep);
    if (sep == std::string::npos || !(IEquals(scheme, "http") || IEquals(scheme, "https"))) {
      return Fail(400, "request target is neither a path nor an http(s) URI");
    }
    size_t start = sep + 3;
    size_t end = r.path.find_first_of("/?#", start);
    if (end == std::string::npos) end = r.path.size();
    if (end == start) return Fail(400, "request target has an empty authority");
    r.authority.assign(r.path, start, end - start);
    if (end < r.path.size() && r.path[end] == '?') {
      r.path = absl::StrCat("/", absl::string_view(r.path).substr(end));
    } else {
      r.path.erase(0, end);
      if (r.path.empty()) r.path = "/";
    }
  }
  if (r.authority.empty()) {
    if (hosts == 0) {
      if (r.version_minor >= 1) return Fail(400, "missing Host field");
    } else {
      {
        absl::string_view host = h.Get("host");
        r.authority.assign(host.data(), host.size());
      }
    }
  }
  h.Remove("host");
  if (r.authority.empty() && r.version_minor >= 1) return Fail(400, "empty Host field");

  if (!OnlyChunked(h)) {
    // A coding under the chunking (gzip, chunked) would reach the upstream undeclared once the
    // field is re-written for the next hop (RFC 9112 6.1: 501 for codings not understood).
    return Fail(501, "transfer codings other than chunked are not supported");
  }
  if (parser_.flags & F_CHUNKED) {
    r.framing = Framing::kChunked;
  } else if (parser_.flags & F_CONTENT_LENGTH) {
    r.framing = Framing::kContentLength;
    r.content_length = parser_.content_length;
  }
  if (parser_.upgrade) {
    bool h2c = false;
    ForEachToken(h.Get("upgrade"), [&](absl::string_view t) {
      if (IEquals(t, "h2c")) {
        h2c = true;
      } else if (r.upgrade.empty()) {
        r.upgrade.assign(t.data(), t.size());
      }
      return true;
    });
    // h2c is stripped, never honoured (RFC 9113 3.1); an upgrade carrying a body is served as a
    // plain request: no tunnel can start before the body is done.
    if (h2c || r.framing == Framing::kChunked ||
        (r.framing == Framing::kContentLength && r.content_length > 0)) {
      r.upgrade.clear();
      parser_.upgrade = 0;
    }
    if (h2c) h.Remove("http2-settings");
  }
  StripHopByHop(h);
  r.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  decoder_->OnHeaders(r, EndsAtHeaders(r));
  return 0;
}

void Http1ServerCodec::DeliverData(buffer::Buffer& data, bool end_stream) {
  decoder_->OnData(data, end_stream);
}

void Http1ServerCodec::DeliverTrailers(HeaderMap& trailers) { decoder_->OnTrailers(trailers); }

void Http1ServerCodec::EncodeInformational(const ResponseHead& head) {
  // HTTP/1.0 clients do not understand 1xx (RFC 9110 15.2).
  if (request_.version_minor == 0) return;
  scratch_.clear();
  absl::StrAppend(&scratch_, "HTTP/1.1 ", head.status, " ",
                  head.reason.empty() ? StatusText(head.status) : head.reason, "\r\n");
  AppendHeaders(scratch_, head.headers);
  scratch_.append("\r\n");
  out_.Append(scratch_);
}

void Http1ServerCodec::EncodeHeaders(const ResponseHead& head, bool end_stream) {
  scratch_.clear();
  absl::StrAppend(&scratch_, "HTTP/1.1 ", head.status, " ",
                  head.reason.empty() ? StatusText(head.status) : head.reason, "\r\n");
  AppendHeaders(scratch_, head.headers);
  response_keep_alive_ = request_.keep_alive && head.keep_alive;
  const bool head_request = request_.method == "HEAD";
  if (BodylessStatus(head.status) || head_request) {
    // The framing fields of a HEAD or 304 response describe the GET's body: they stay in
    // head.headers as the upstream sent them. Body bytes offered later (a local reply's text)
    // are dropped: on the wire they would be read as the next response.
    response_bodyless_ = true;
  } else if (head.framing == Framing::kContentLength) {
    absl::StrAppend(&scratch_, "Content-Length: ", head.content_length, "\r\n");
  } else if (end_stream) {
    scratch_.append("Content-Length: 0\r\n");
  } else if (request_.version_minor >= 1) {
    scratch_.append("Transfer-Encoding: chunked\r\n");
    response_chunked_ = true;
  } else {
    response_keep_alive_ = false;  // the body ends when the connection does
  }
  if (head.status == 101) {
    absl::StrAppend(&scratch_, "Connection: Upgrade\r\nUpgrade: ", head.upgrade, "\r\n");
  } else if (!response_keep_alive_) {
    scratch_.append("Connection: close\r\n");
  } else if (request_.version_minor == 0) {
    scratch_.append("Connection: keep-alive\r\n");
  }
  scratch_.append("\r\n");
  out_.Append(scratch_);
}

void Http1ServerCodec::EncodeData(buffer::Buffer& data, bool end_stream) {
  if (response_bodyless_) return data.Clear();
  EncodeBody(out_, data, end_stream, response_chunked_);
}

void Http1ServerCodec::EncodeTrailers(const HeaderMap& trailers) {
  if (response_bodyless_) return;
  EncodeTrailerFields(out_, scratch_, trailers, response_chunked_);
}

// ---- Http1ClientCodec -----------------------------------------------------------------------

Http1ClientCodec::Http1ClientCodec(HeaderLimits limits, buffer::Buffer& out)
    : Http1Parser(HTTP_RESPONSE, limits), out_(out) {}

void Http1ClientCodec::OnMessageBegin() {
  response_.Clear();
  informational_ = false;
}

int Http1ClientCodec::OnHeadersComplete() {
  ResponseHead& r = response_;
  if (parser_.http_major != 1) {
    return Fail(
        502, absl::StrCat("upstream answered HTTP/", parser_.http_major, ".", parser_.http_minor));
  }
  r.version_minor = static_cast<uint8_t>(parser_.http_minor);
  r.status = parser_.status_code;
  if (r.status < 100 || r.status > 599) return Fail(502, "upstream status code out of range");
  if (r.status == 101) {
    if (!request_upgrade_ || !parser_.upgrade) return Fail(502, "unrequested 101 from upstream");
    {
      absl::string_view up = r.headers.Get("upgrade");
      r.upgrade.assign(up.data(), up.size());
    }
    StripHopByHop(r.headers);
    decoder_->OnHeaders(r, true);
    return 0;
  }
  // llhttp reads a Content-Length body on any status; 1xx, 204 and 304 have none (RFC 9110 6.4.1),
  // so say so, or the bytes of the next response would be taken for this one's body.
  if (r.status < 200) {
    informational_ = true;
    StripHopByHop(r.headers);
    decoder_->OnInformational(r);
    return 1;
  }
  parser_.upgrade = 0;  // an Upgrade on a final response is only an announcement
  if (!OnlyChunked(r.headers))
    return Fail(502, "upstream used a transfer coding other than chunked");
  bool skip_body = request_is_head_;
  if (skip_body || r.status == 204 || r.status == 304) {
    r.framing = Framing::kNone;
  } else if (parser_.flags & F_CHUNKED) {
    r.framing = Framing::kChunked;
  } else if (parser_.flags & F_CONTENT_LENGTH) {
    r.framing = Framing::kContentLength;
    r.content_length = parser_.content_length;
  } else {
    r.framing = Framing::kUntilClose;
  }
  if (r.framing == Framing::kNone) {
    // Keep what the upstream said about the length (HEAD, 304), minus hop-by-hop fields.
    int cl = r.headers.Find("content-length");
    std::string saved = cl >= 0 ? std::string(r.headers.value(static_cast<size_t>(cl))) : "";
    StripHopByHop(r.headers);
    if (cl >= 0 && r.status != 204) r.headers.Add("Content-Length", saved);
  } else {
    StripHopByHop(r.headers);
  }
  r.keep_alive = llhttp_should_keep_alive(&parser_) != 0 && r.framing != Framing::kUntilClose;
  decoder_->OnHeaders(r, EndsAtHeaders(r));
  return r.framing == Framing::kNone ? 1 : 0;
}

void Http1ClientCodec::DeliverData(buffer::Buffer& data, bool end_stream) {
  if (informational_ || response_.status == 101) return;
  decoder_->OnData(data, end_stream);
}

void Http1ClientCodec::DeliverTrailers(HeaderMap& trailers) { decoder_->OnTrailers(trailers); }

bool Http1ClientCodec::OnEndOfStream() {
  if (!message_started()) return false;
  llhttp_errno_t err = llhttp_finish(&parser_);
  return err == HPE_OK || err == HPE_PAUSED;
}

void Http1ClientCodec::EncodeHeaders(const RequestHead& head, bool end_stream) {
  request_is_head_ = head.method == "HEAD";
  request_upgrade_ = !head.upgrade.empty();
  request_chunked_ = false;
  scratch_.clear();
  absl::StrAppend(&scratch_, head.method, " ", head.path, " HTTP/1.1\r\n");
  if (!head.authority.empty()) absl::StrAppend(&scratch_, "Host: ", head.authority, "\r\n");
  AppendHeaders(scratch_, head.headers);
  if (head.framing == Framing::kContentLength) {
    absl::StrAppend(&scratch_, "Content-Length: ", head.content_length, "\r\n");
  } else if (head.framing == Framing::kChunked || (!end_stream && head.framing != Framing::kNone)) {
    scratch_.append("Transfer-Encoding: chunked\r\n");
    request_chunked_ = true;
  }
  if (request_upgrade_)
    absl::StrAppend(&scratch_, "Connection: Upgrade\r\nUpgrade: ", head.upgrade, "\r\n");
  scratch_.append("\r\n");
  out_.Append(scratch_);
}

void Http1ClientCodec::EncodeData(buffer::Buffer& data, bool end_stream) {
  EncodeBody(out_, data, end_stream, request_chunked_);
}

void Http1ClientCodec::EncodeTrailers(const HeaderMap& trailers) {
  EncodeTrailerFields(out_, scratch_, trailers, request_chunked_);
}

}  // namespace remora::http
