#pragma once

// A transport under a TcpConnection: it turns the bytes read from the socket into the bytes the
// connection's owner reads, and the owner's writes into the bytes sent (TLS: tls/transport.h).
// The connection drives it; it never touches the socket. Plain TCP has none (no cost).

#include <cstddef>
#include <string>

#include "proxy/buffer/buffer.h"

namespace remora::event {

class Transport {
 public:
  enum class Status {
    kOk,
    kReady,   // the handshake has just completed (reported once)
    kClosed,  // the peer ended the session cleanly (TLS close_notify): its end of stream
    kError,   // fatal: the connection must close
  };

  virtual ~Transport() = default;
  // Client side: the first bytes to send (a ClientHello), into `out`.
  virtual Status Start(buffer::Buffer& out) = 0;
  // Takes bytes from `in` (what it cannot use yet stays), appends plaintext to `plain` and bytes
  // to send (handshake messages, writes held until the handshake ends) to `out`.
  virtual Status Read(buffer::Buffer& in, buffer::Buffer& plain, buffer::Buffer& out) = 0;
  // Takes all of `plain`: into `out` now, or held until the handshake completes.
  virtual Status Write(buffer::Buffer& plain, buffer::Buffer& out) = 0;
  // The end of this side's stream (close_notify) into `out`.
  virtual void Shutdown(buffer::Buffer& out) = 0;
  // Plaintext held until the handshake completes.
  virtual size_t buffered() const = 0;
  virtual bool ready() const = 0;
  // The handshake will not complete: it timed out, or the peer left; the connection closes next.
  virtual void OnHandshakeAbandoned(bool timed_out) {}
  // The peer's verified identity (a SPIFFE ID), once ready; empty if it has none.
  virtual const std::string& peer_identity() const = 0;
  // This side's own identity, if it presents one.
  virtual const std::string& local_identity() const = 0;
  // The application protocol agreed in the handshake (ALPN), once ready; empty if none.
  virtual std::string alpn() const = 0;
};

}  // namespace remora::event
