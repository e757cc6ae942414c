#pragma once

// TLS contexts (OpenSSL 3 SSL_CTX) built from PEM files: a server context terminates TLS on a
// listener, a client context originates it on a cluster. Both allow TLS 1.2 and 1.3 only, and in
// TLS 1.2 only ECDHE key exchange with AEAD ciphers. A context verifies its peer against the
// trust bundle and then makes the SPIFFE checks (tls/spiffe.h) and the identity match; a failed
// check fails the handshake with an alert, and its reason is kept for the metric.
//
// A context is immutable once built and shared by every connection that uses it (connections
// keep it alive); a certificate rotation builds a new one.

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "tls/spiffe.h"

namespace remora::tls {

struct ContextOptions {
  bool server = true;
  std::string cert_file;  // PEM chain, leaf first
  std::string key_file;   // PEM private key
  std::string ca_file;    // PEM trust bundle; empty: the peer is not verified (servers only)
  // Servers: clients must present a certificate the bundle vouches for (mutual TLS).
  bool require_peer_certificate = false;
  // Servers: the protocols accepted, most preferred first; clients: the protocols offered.
  std::vector<std::string> alpn;
  // Who the peer must be (clients: the server; servers: clients). Empty: anyone the bundle
  // vouches for with a valid SPIFFE ID.
  SpiffeMatcher peer;
  std::string sni;  // clients: the server name to ask for (none if empty)
  // Clients: the server is a mesh workload, checked by its SPIFFE ID (the SVID checks and
  // `peer`). false: a plain TLS server, checked by host name against `sni`.
  bool spiffe = true;
};

// ALPN protocols only remora's sidecars offer one another. A mesh client offers kAlpnMesh beside
// h2 or http/1.1 (never chosen: it marks the ClientHello as the mesh's), and a TCP tunnel offers
// kAlpnTunnel (chosen: the bytes inside are relayed as they are). An inbound listener in
// permissive mode terminates only TLS marked so; other TLS is the app's own and passes through.
inline constexpr char kAlpnMesh[] = "remora-mesh";
inline constexpr char kAlpnTunnel[] = "remora-tcp";

// Why a handshake failed: the `reason` label of remora_*_tls_handshake_failures_total.
enum class HandshakeFailure : uint8_t {
  kNone,
  kNotTls,             // the bytes were not TLS (plaintext to a TLS port)
  kNoPeerCertificate,  // a client that must present a certificate did not
  kUntrusted,          // a chain the trust bundle does not vouch for
  kExpired,
  kNotYetValid,
  kBadSvid,           // not a workload certificate (a CA as leaf, no or several URI SANs, bad ID)
  kWrongIdentity,     // a valid SVID, but not the identity expected
  kRejectedByPeer,    // the peer refused us (an alert about our certificate)
  kNoSharedProtocol,  // no common TLS version, cipher or ALPN protocol
  kTimeout,           // no complete handshake in time (counted by the connection)
  kOther,
  kCount,
};
const char* HandshakeFailureName(HandshakeFailure f);

// The PEM text of a context's files (options' cert_file, key_file, ca_file; empty where none).
struct PemFiles {
  std::string cert, key, ca;
};

class Context {
 public:
  // Reads the options' files, then loads them as below.
  static absl::StatusOr<std::shared_ptr<const Context>> Load(const ContextOptions& options);
  // From files already read: a config's contexts read each file once, so every context built
  // in one load sees the same bytes. The options' paths only name the files in errors.
  static absl::StatusOr<std::shared_ptr<const Context>> Load(const ContextOptions& options,
                                                             const PemFiles& pem);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  SSL_CTX* ssl_ctx() const { return ctx_; }
  const ContextOptions& options() const { return options_; }
  // Seconds until the leaf certificate expires (negative: expired), at load time plus elapsed.
  int64_t expires_at_unix() const { return expires_at_; }
  // The SPIFFE ID of our own certificate ("" if none, or not an SVID).
  const std::string& own_id() const { return own_id_; }

  // Clients: a copy of the session last given by the server at `key` (an endpoint's address),
  // to resume with (the caller's to free), or null. Sessions live in the context, so a rotated
  // trust bundle or identity (a new context) never resumes one checked under the old.
  SSL_SESSION* FindSession(const std::string& key) const;
  // Clients: keeps `session` (its reference) as the one to resume `key` with.
  void StoreSession(const std::string& key, SSL_SESSION* session) const;

 private:
  Context() = default;
  SSL_CTX* ctx_ = nullptr;
  ContextOptions options_;
  int64_t expires_at_ = 0;
  std::string own_id_;
  std::vector<unsigned char> alpn_wire_;  // clients: the offered list, length-prefixed
  // Clients: one resumable session per endpoint; shared by the workers, taken once per new
  // connection and stored once per ticket received.
  mutable absl::Mutex sessions_mu_;
  mutable absl::flat_hash_map<std::string, SSL_SESSION*> sessions_ ABSL_GUARDED_BY(sessions_mu_);
  friend int SelectAlpn(SSL*, const unsigned char**, unsigned char*, const unsigned char*, unsigned,
                        void*);
};

}  // namespace remora::tls
