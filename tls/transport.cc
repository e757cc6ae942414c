#include "tls/transport.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace remora::tls {

namespace {

// The BIO between OpenSSL and our buffers: its data is the TlsTransport, which points it at the
// buffers of the call in progress.
int BioWriteFn(BIO* bio, const char* data, int len) {
  return static_cast<TlsTransport*>(BIO_get_data(bio))->BioWrite(data, len);
}
int BioReadFn(BIO* bio, char* data, int len) {
  BIO_clear_retry_flags(bio);
  int n = static_cast<TlsTransport*>(BIO_get_data(bio))->BioRead(data, len);
  if (n < 0) BIO_set_retry_read(bio);
  return n;
}
long BioCtrlFn(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
int BioCreateFn(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* Method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "remora buffers");
    BIO_meth_set_write(m, BioWriteFn);
    BIO_meth_set_read(m, BioReadFn);
    BIO_meth_set_ctrl(m, BioCtrlFn);
    BIO_meth_set_create(m, BioCreateFn);
    return m;
  }();
  return method;
}

// What an OpenSSL error at the handshake says about the peer.
HandshakeFailure FromSslError(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return HandshakeFailure::kOther;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_WRONG_SSL_VERSION:
      return HandshakeFailure::kNotTls;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return HandshakeFailure::kNoPeerCertificate;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      return HandshakeFailure::kNoSharedProtocol;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return HandshakeFailure::kRejectedByPeer;
    default:
      return HandshakeFailure::kOther;
  }
}

}  // namespace

TlsTransport::TlsTransport(std::shared_ptr<const Context> context, absl::string_view alpn,
                           std::string session_key)
    : context_(std::move(context)), session_key_(std::move(session_key)) {
  ssl_ = SSL_new(context_->ssl_ctx());
  SSL_set_app_data(ssl_, this);
  BIO* bio = BIO_new(Method());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways, owned by ssl_
  const ContextOptions& o = context_->options();
  if (o.server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    // No SNI for an IP address (RFC 6066).
    in6_addr ip;
    if (!o.sni.empty() && inet_pton(AF_INET, o.sni.c_str(), &ip) != 1 &&
        inet_pton(AF_INET6, o.sni.c_str(), &ip) != 1) {
      SSL_set_tlsext_host_name(ssl_, o.sni.c_str());
    }
    // A plain TLS server is checked by host name, as a browser would (or by IP address).
    // Failing to set the check fails the handshake: never an unchecked peer.
    if (!o.spiffe) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      bool set = !o.sni.empty() && (X509_VERIFY_PARAM_set1_ip_asc(param, o.sni.c_str()) == 1 ||
                                    SSL_set1_host(ssl_, o.sni.c_str()) == 1);
      ERR_clear_error();
      if (!set) Fail(HandshakeFailure::kOther, "no host name to check the server against");
    }
    if (!session_key_.empty()) {
      if (SSL_SESSION* session = context_->FindSession(session_key_)) {
        SSL_set_session(ssl_, session);
        SSL_SESSION_free(session);  // SSL_set_session took its own reference
      }
    }
    if (!alpn.empty()) {
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
    }
  }
}

void TlsTransport::Done() {
  if (done_reported_) return;
  done_reported_ = true;
  if (on_done_) on_done_(*this);
}

void TlsTransport::OnHandshakeAbandoned(bool timed_out) {
  if (ready_) return;
  if (timed_out) {
    Fail(HandshakeFailure::kTimeout, "no complete handshake within the handshake timeout");
  } else if (any_input_) {
    Fail(HandshakeFailure::kOther, "the peer closed the connection during the handshake");
  } else {
    return;  // connected and left without a byte (a port probe): no handshake was tried
  }
  Done();
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

void TlsTransport::Fail(HandshakeFailure f, std::string detail) {
  if (failure_ != HandshakeFailure::kNone) return;  // the first reason is the cause
  failure_ = f;
  failure_detail_ = std::move(detail);
}

int TlsTransport::BioRead(char* data, int len) {
  if (in_ == nullptr || in_->empty()) return -1;
  any_input_ = true;
  size_t want = static_cast<size_t>(len), got = 0;
  while (got < want && !in_->empty()) {
    absl::string_view s = in_->slice(0).view();
    size_t n = std::min(s.size(), want - got);
    std::memcpy(data + got, s.data(), n);
    in_->Drain(n);
    got += n;
  }
  return static_cast<int>(got);
}

int TlsTransport::BioWrite(const char* data, int len) {
  if (in_read_) {
    staged_.append(data, static_cast<size_t>(len));
  } else {
    out_->Append(absl::string_view(data, static_cast<size_t>(len)));
  }
  return len;
}

event::Transport::Status TlsTransport::Start(buffer::Buffer& out) {
  if (failure_ != HandshakeFailure::kNone) {  // set up wrong: refuse before a byte goes out
    Done();
    return Status::kError;
  }
  return Handshake(out);
}

event::Transport::Status TlsTransport::Handshake(buffer::Buffer& out) {
  out_ = &out;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    ready_ = true;
    // The verify callback named the peer; a resumed session (no verification) or a plain TLS
    // server's certificate is read here.
    X509* peer = peer_id_.empty() ? SSL_get0_peer_certificate(ssl_) : nullptr;
    if (peer != nullptr) {
      SvidError ignored;
      if (absl::StatusOr<SpiffeId> id = PeerSpiffeId(peer, &ignored); id.ok()) {
        peer_id_ = id->ToString();
      }
    }
    ERR_clear_error();  // what reading the peer's certificate may have left
    WriteHeld(out);
    Done();
    return Status::kReady;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::kOk;
  unsigned long e = ERR_peek_error();
  if (failure_ == HandshakeFailure::kNone) {
    char buf[256] = "the peer closed the connection during the handshake";
    if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
    Fail(e != 0 ? FromSslError(e) : HandshakeFailure::kOther, buf);
  }
  ERR_clear_error();
  Done();
  return Status::kError;
}

void TlsTransport::WriteHeld(buffer::Buffer& out) {
  if (held_.empty()) return;
  buffer::Buffer held = std::move(held_);
  Write(held, out);
}

event::Transport::Status TlsTransport::Read(buffer::Buffer& in, buffer::Buffer& plain,
                                            buffer::Buffer& out) {
  // SSL_get_error reads the thread's whole error queue: anything another OpenSSL user left there
  // would turn a "want read" into a failure. Once per batch of records, not per call.
  ERR_clear_error();
  in_ = &in;
  out_ = &out;
  Status st = Status::kOk;
  if (!ready_) {
    st = Handshake(out);
    if (st != Status::kReady) {
      in_ = nullptr;
      return st;
    }
  }
  Status drained = Drain(plain);
  in_ = nullptr;
  return drained == Status::kOk ? st : drained;
}

event::Transport::Status TlsTransport::Drain(buffer::Buffer& plain) {
  buffer::ReadArena& arena = buffer::ReadArena::ForThisThread();
  for (;;) {
    auto [mem, len] = arena.Alloc();
    in_read_ = true;
    int n = SSL_read(ssl_, mem, static_cast<int>(len));
    in_read_ = false;
    buffer::Slice got = arena.Commit(n > 0 ? static_cast<size_t>(n) : 0);
    if (!staged_.empty()) {
      out_->Append(staged_);
      staged_.clear();
    }
    if (n > 0) {
      got_plaintext_ = true;
      plain.Append(std::move(got));
      // All taken: no call just to hear "want read".
      if (in_->empty() && !SSL_has_pending(ssl_)) return Status::kOk;
      continue;
    }
    switch (SSL_get_error(ssl_, n)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return Status::kOk;
      case SSL_ERROR_ZERO_RETURN:
        return Status::kClosed;
      default:
        RefusedAfterHandshake();
        ERR_clear_error();
        return Status::kError;
    }
  }
}

void TlsTransport::RefusedAfterHandshake() {
  // TLS 1.3: a client's handshake is done once it has sent its certificate; the server checks
  // it after, and its refusal comes as the first thing read. That is still a failed handshake,
  // and its reason is what an operator needs (the server distrusts our certificate).
  // Only where the refusal can be of our certificate: TLS 1.3, and we have one to send.
  if (context_->options().server || got_plaintext_ || failure_ != HandshakeFailure::kNone ||
      SSL_version(ssl_) != TLS1_3_VERSION || SSL_get_certificate(ssl_) == nullptr) {
    return;
  }
  // Any fatal alert received (OpenSSL's reasons for them are SSL_AD_REASON_OFFSET + the alert):
  // a server refusing a TLS 1.3 client certificate sends handshake_failure, bad_certificate,
  // unknown_ca or certificate_required, by implementation.
  unsigned long e = ERR_peek_error();
  int reason = ERR_GET_REASON(e);
  if (ERR_GET_LIB(e) != ERR_LIB_SSL || reason < SSL_AD_REASON_OFFSET ||
      reason > SSL_AD_REASON_OFFSET + 255) {
    return;
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  Fail(HandshakeFailure::kRejectedByPeer,
       absl::StrCat("the server refused our certificate after our side had completed the "
                    "handshake (TLS 1.3): ",
                    buf));
  done_reported_ = false;  // reported again, now as failed
  Done();
}

event::Transport::Status TlsTransport::Write(buffer::Buffer& plain, buffer::Buffer& out) {
  if (!ready_) {
    held_.Move(plain);
    return Status::kOk;
  }
  out_ = &out;
  ERR_clear_error();  // as in Read
  // One SSL_write makes at least one record, and OpenSSL 3 pays per record (cipher context
  // set-up, a buffer when idle buffers are released): small slices (an HTTP/2 frame header, a
  // response head) are gathered into full records rather than sent a record each. The BIO takes
  // every byte, so each SSL_write completes whole.
  constexpr size_t kRecord = 16 * 1024;
  char gather[kRecord];
  size_t gathered = 0;
  auto write = [this](const char* data, size_t n) {
    if (SSL_write(ssl_, data, static_cast<int>(n)) > 0) return true;
    ERR_clear_error();
    return false;
  };
  bool ok = true;
  for (size_t i = 0; ok && i < plain.slice_count(); ++i) {
    absl::string_view s = plain.slice(i).view();
    if (gathered + s.size() <= kRecord) {
      std::memcpy(gather + gathered, s.data(), s.size());
      gathered += s.size();
      continue;
    }
    if (gathered > 0) {
      ok = write(gather, gathered);
      gathered = 0;
    }
    if (!ok) break;
    if (s.size() < kRecord) {
      std::memcpy(gather, s.data(), s.size());
      gathered = s.size();
    } else {
      ok = write(s.data(), s.size());  // whole records straight from the slice
    }
  }
  if (ok && gathered > 0) ok = write(gather, gathered);
  plain.Clear();
  return ok ? Status::kOk : Status::kError;
}

void TlsTransport::Shutdown(buffer::Buffer& out) {
  if (shutdown_sent_ || !ready_) return;
  shutdown_sent_ = true;
  out_ = &out;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // our close_notify; the peer's is not awaited
  ERR_clear_error();
}

std::string TlsTransport::alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl_, &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

}  // namespace remora::tls
