#pragma once

// TLS as a TcpConnection transport (event/transport.h), driven by the event loop and never
// blocking. OpenSSL reads and writes through a BIO over our own buffers: ciphertext is read from
// the connection's slices and written straight into the send buffer (one copy each way, where a
// memory BIO pair would make two), and plaintext is decrypted into read-arena slices the owner
// takes without another copy. Idle connections give their OpenSSL buffers back
// (SSL_MODE_RELEASE_BUFFERS).
//
// After the handshake: the peer's verified SPIFFE ID (if it sent a certificate), the ALPN
// protocol agreed, and, if it failed, why.

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"

#include "proxy/buffer/buffer.h"
#include "proxy/event/transport.h"
#include "tls/context.h"

namespace remora::tls {

class TlsTransport final : public event::Transport {
 public:
  // `alpn`: clients, the protocols to offer on this connection, in wire format (length-prefixed
  // names), replacing the context's. `session_key`: clients, the endpoint (its address): a
  // session the context holds for it is offered for resumption, and tickets the server sends
  // are kept for the next connection to it. Empty: no resumption.
  explicit TlsTransport(std::shared_ptr<const Context> context, absl::string_view alpn = {},
                        std::string session_key = {});
  ~TlsTransport() override;

  Status Start(buffer::Buffer& out) override;
  Status Read(buffer::Buffer& in, buffer::Buffer& plain, buffer::Buffer& out) override;
  Status Write(buffer::Buffer& plain, buffer::Buffer& out) override;
  void Shutdown(buffer::Buffer& out) override;
  size_t buffered() const override { return held_.length(); }
  bool ready() const override { return ready_; }
  void OnHandshakeAbandoned(bool timed_out) override;

  // Told when the handshake completes or fails (failure() says which), for metrics and logs;
  // once, except for a TLS 1.3 client whose server refuses its certificate after the client's
  // side completed: told again, then as failed (kRejectedByPeer).
  void SetOnHandshakeDone(absl::AnyInvocable<void(const TlsTransport&)> cb) {
    on_done_ = std::move(cb);
  }

  // The peer's SPIFFE ID ("" if it sent no certificate, or not an SVID), once ready.
  const std::string& peer_identity() const override { return peer_id_; }
  const std::string& local_identity() const override { return context_->own_id(); }
  // The ALPN protocol agreed ("" if none), once ready.
  std::string alpn() const override;
  HandshakeFailure failure() const { return failure_; }
  // Once ready: the handshake resumed an earlier session (no certificates exchanged).
  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  const std::string& session_key() const { return session_key_; }
  SSL* ssl() const { return ssl_; }  // tests and diagnostics
  // The verification or OpenSSL error behind failure(), for the log line.
  const std::string& failure_detail() const { return failure_detail_; }

  // For the verify callback and the BIO (tls/transport.cc).
  void Fail(HandshakeFailure f, std::string detail);
  void SetVerifiedPeer(std::string id) { peer_id_ = std::move(id); }
  int BioRead(char* data, int len);
  int BioWrite(const char* data, int len);

 private:
  Status Handshake(buffer::Buffer& out);
  Status Drain(buffer::Buffer& plain);  // decrypts all it can
  void WriteHeld(buffer::Buffer& out);

  void Done();
  // Clients: the server's alert refusing our certificate, read after the handshake.
  void RefusedAfterHandshake();

  std::shared_ptr<const Context> context_;
  std::string session_key_;
  absl::AnyInvocable<void(const TlsTransport&)> on_done_;
  SSL* ssl_ = nullptr;
  buffer::Buffer* in_ = nullptr;   // during a call: ciphertext to read
  buffer::Buffer* out_ = nullptr;  // during a call: where ciphertext goes
  buffer::Buffer held_;            // plaintext written before the handshake completed
  // Bytes OpenSSL writes from inside SSL_read (a KeyUpdate answer, an alert). SSL_read is then
  // decrypting into the thread's read arena, which Buffer::Append would hand out again: they
  // wait here and join out_ once SSL_read has returned.
  std::string staged_;
  bool in_read_ = false;
  std::string peer_id_;
  std::string failure_detail_;
  HandshakeFailure failure_ = HandshakeFailure::kNone;
  bool ready_ = false;
  bool shutdown_sent_ = false;
  bool done_reported_ = false;
  bool any_input_ = false;      // the peer sent something
  bool got_plaintext_ = false;  // application data was read
};

}  // namespace remora::tls
