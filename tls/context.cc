#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "proxy/common/file.h"
#include "tls/transport.h"

namespace remora::tls {

namespace {

// TLS 1.2: ECDHE key exchange and AEAD ciphers only. TLS 1.3's suites are all AEAD.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kGroups[] = "X25519:P-256:P-384";

std::string LastError() {
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

HandshakeFailure FromVerifyError(int err) {
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return HandshakeFailure::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return HandshakeFailure::kNotYetValid;
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return HandshakeFailure::kWrongIdentity;
    default:
      return HandshakeFailure::kUntrusted;
  }
}

// At each certificate of the peer's chain, after OpenSSL's own checks; at the leaf (depth 0),
// also the SPIFFE checks and the identity match. A refusal sends the peer an alert.
int Verify(int preverify_ok, X509_STORE_CTX* store) {
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* transport = static_cast<TlsTransport*>(SSL_get_app_data(ssl));
  const auto* context =
      static_cast<const Context*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
  if (transport == nullptr || context == nullptr) return 0;
  if (!preverify_ok) {
    int err = X509_STORE_CTX_get_error(store);
    if (err == X509_V_ERR_INVALID_PURPOSE && X509_STORE_CTX_get_error_depth(store) == 0 &&
        (context->options().server || context->options().spiffe)) {
      // A certificate not meant for this end of TLS: most often a CA's own (keyCertSign
      // only), which OpenSSL refuses before the SVID checks would.
      bool ca = X509_check_ca(X509_STORE_CTX_get_current_cert(store)) != 0;
      transport->Fail(HandshakeFailure::kBadSvid,
                      ca ? "ca_as_leaf: a CA certificate presented as a workload's"
                         : "the certificate is not for use in TLS (key usage or extended key "
                           "usage)");
      return 0;
    }
    transport->Fail(FromVerifyError(err),
                    absl::StrCat("certificate at depth ", X509_STORE_CTX_get_error_depth(store),
                                 ": ", X509_verify_cert_error_string(err)));
    return 0;
  }
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  if (!context->options().server && !context->options().spiffe) return 1;  // host name checked
  SvidError svid;
  absl::StatusOr<SpiffeId> id = PeerSpiffeId(X509_STORE_CTX_get_current_cert(store), &svid);
  if (!id.ok()) {
    transport->Fail(HandshakeFailure::kBadSvid,
                    absl::StrCat(SvidErrorName(svid), ": ", id.status().message()));
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  if (!context->options().peer.Matches(*id)) {
    transport->Fail(HandshakeFailure::kWrongIdentity,
                    absl::StrCat("the peer is ", id->ToString(), "; expected ",
                                 context->options().peer.ToString()));
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  transport->SetVerifiedPeer(id->ToString());
  return 1;
}

// Clients: a session ticket arrived (TLS 1.3: after the handshake, from SSL_read; TLS 1.2: at its
// end). It replaces the one kept for the connection's endpoint.
int NewSession(SSL* ssl, SSL_SESSION* session) {
  auto* transport = static_cast<TlsTransport*>(SSL_get_app_data(ssl));
  const auto* context =
      static_cast<const Context*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
  if (transport == nullptr || context == nullptr || transport->session_key().empty()) return 0;
  // A copy: OpenSSL marks the connection's own session unresumable when the connection is freed
  // without a close_notify sent (a reset, an idle pool connection closed at once), which would
  // throw the ticket away with it.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy != nullptr) context->StoreSession(transport->session_key(), copy);
  return 0;  // the original stays OpenSSL's
}

// PEM text read through a BIO over it, without a copy.
struct MemBio {
  explicit MemBio(const std::string& pem)
      : bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))) {}
  ~MemBio() { BIO_free(bio); }
  BIO* bio;
};

// After the last PEM block of a text OpenSSL reports "no start line": the end, not an error.
void ClearEndOfPem() {
  unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ERR_clear_error();
}

// The leaf (first) certificate and the chain after it, as SSL_CTX_use_certificate_chain_file.
bool UseChain(SSL_CTX* ctx, const std::string& pem) {
  MemBio in(pem);
  X509* leaf = PEM_read_bio_X509_AUX(in.bio, nullptr, nullptr, nullptr);
  if (leaf == nullptr) return false;
  bool ok = SSL_CTX_use_certificate(ctx, leaf) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
  X509_free(leaf);
  while (ok) {
    X509* ca = PEM_read_bio_X509(in.bio, nullptr, nullptr, nullptr);
    if (ca == nullptr) break;
    ok = SSL_CTX_add0_chain_cert(ctx, ca) == 1;  // owns it on success
    if (!ok) X509_free(ca);
  }
  ClearEndOfPem();
  return ok && ERR_peek_error() == 0;
}

bool UseKey(SSL_CTX* ctx, const std::string& pem) {
  MemBio in(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in.bio, nullptr, nullptr, nullptr);
  if (key == nullptr) return false;
  bool ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  return ok;
}

// Every certificate of the bundle into the context's trust store; at least one.
bool AddTrustBundle(SSL_CTX* ctx, const std::string& pem) {
  MemBio in(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* ca = PEM_read_bio_X509(in.bio, nullptr, nullptr, nullptr)) {
    bool ok = X509_STORE_add_cert(store, ca) == 1;
    X509_free(ca);
    if (!ok) return false;
    ++added;
  }
  ClearEndOfPem();
  return added > 0 && ERR_peek_error() == 0;
}

// Endpoints a client context keeps sessions for; past it, one is forgotten per new one.
constexpr size_t kMaxSessions = 4096;

}  // namespace

SSL_SESSION* Context::FindSession(const std::string& key) const {
  absl::MutexLock lock(&sessions_mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION* s = it->second;
  // A resumed handshake checks no certificate: a session is not offered past its peer's
  // certificate's expiry (SVIDs often live shorter than tickets).
  X509* peer = SSL_SESSION_get0_peer(s);
  if (SSL_SESSION_is_resumable(s) != 1 ||
      SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) <= time(nullptr) ||
      (peer != nullptr && X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0)) {
    SSL_SESSION_free(s);
    sessions_.erase(it);
    return nullptr;
  }
  // A copy for the connection: OpenSSL writes to the session a connection uses (marks it
  // unresumable after a TLS 1.3 resumption or an abrupt close) without this lock, so the one
  // kept here is never handed out.
  return SSL_SESSION_dup(s);
}

void Context::StoreSession(const std::string& key, SSL_SESSION* session) const {
  absl::MutexLock lock(&sessions_mu_);
  auto [it, inserted] = sessions_.try_emplace(key, session);
  if (!inserted) {
    SSL_SESSION_free(it->second);
    it->second = session;
    return;
  }
  if (sessions_.size() > kMaxSessions) {
    auto victim = sessions_.begin();
    if (victim == it) ++victim;
    SSL_SESSION_free(victim->second);
    sessions_.erase(victim);
  }
}

// Servers: the first of our protocols (in our order) the client offers; none in common fails
// the handshake (a client that offers ALPN and shares nothing would misread what we speak),
// unless it offers only the mesh's marks (a sidecar's TCP tunnel to a listener that does not
// take tunnels): then no protocol is chosen, as for a client that offers none.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned inlen, void* arg) {
  const auto* context = static_cast<const Context*>(arg);
  bool only_marks = inlen > 0;
  for (unsigned i = 0; i < inlen;) {
    unsigned n = in[i];
    if (i + 1 + n > inlen) break;
    absl::string_view offered(reinterpret_cast<const char*>(in + i + 1), n);
    if (offered != kAlpnMesh && offered != kAlpnTunnel) only_marks = false;
    i += 1 + n;
  }
  for (const std::string& ours : context->options().alpn) {
    for (unsigned i = 0; i < inlen;) {
      unsigned n = in[i];
      if (i + 1 + n > inlen) break;
      if (n == ours.size() && std::equal(ours.begin(), ours.end(), in + i + 1)) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(n);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + n;
    }
  }
  return only_marks ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

const char* HandshakeFailureName(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kNone:
      return "none";
    case HandshakeFailure::kNotTls:
      return "not_tls";
    case HandshakeFailure::kNoPeerCertificate:
      return "no_peer_certificate";
    case HandshakeFailure::kUntrusted:
      return "untrusted";
    case HandshakeFailure::kExpired:
      return "expired";
    case HandshakeFailure::kNotYetValid:
      return "not_yet_valid";
    case HandshakeFailure::kBadSvid:
      return "bad_svid";
    case HandshakeFailure::kWrongIdentity:
      return "wrong_identity";
    case HandshakeFailure::kRejectedByPeer:
      return "rejected_by_peer";
    case HandshakeFailure::kNoSharedProtocol:
      return "no_shared_protocol";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kOther:
    case HandshakeFailure::kCount:
      break;
  }
  return "other";
}

Context::~Context() {
  for (auto& [key, session] : sessions_) SSL_SESSION_free(session);
  SSL_CTX_free(ctx_);
}

absl::StatusOr<std::shared_ptr<const Context>> Context::Load(const ContextOptions& options) {
  PemFiles pem;
  for (auto [path, into] :
       {std::pair{&options.cert_file, &pem.cert}, std::pair{&options.key_file, &pem.key},
        std::pair{&options.ca_file, &pem.ca}}) {
    if (!path->empty() && !ReadFile(*path, into)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", *path, ": ", std::strerror(errno)));
    }
  }
  return Load(options, pem);
}

absl::StatusOr<std::shared_ptr<const Context>> Context::Load(const ContextOptions& options,
                                                             const PemFiles& pem) {
  std::shared_ptr<Context> c(new Context);
  c->options_ = options;
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(options.server ? TLS_server_method() : TLS_client_method());
  if (c->ctx_ == nullptr) return absl::InternalError(LastError());
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_ex_data(ctx, ContextIndex(), c.get());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No renegotiation (TLS 1.2), no compression; servers choose the cipher.
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return absl::InternalError(absl::StrCat("cipher setup: ", LastError()));
  }
  if (!options.cert_file.empty()) {
    if (!UseChain(ctx, pem.cert)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load the certificate ", options.cert_file, ": ", LastError()));
    }
    if (!UseKey(ctx, pem.key) || SSL_CTX_check_private_key(ctx) != 1) {
      if (ERR_GET_REASON(ERR_peek_error()) != X509_R_KEY_VALUES_MISMATCH) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot load the key ", options.key_file, ": ", LastError()));
      }
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(
          "the key ", options.key_file, " does not match the certificate ", options.cert_file));
    }
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    SvidError not_svid;
    if (absl::StatusOr<SpiffeId> id = PeerSpiffeId(leaf, &not_svid); id.ok()) {
      c->own_id_ = id->ToString();
    }
    ERR_clear_error();
    int days = 0, secs = 0;
    if (leaf != nullptr && ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(leaf)) == 1) {
      c->expires_at_ = static_cast<int64_t>(time(nullptr)) + int64_t{days} * 86400 + secs;
    }
  } else if (options.server) {
    return absl::InvalidArgumentError("a TLS server needs a certificate and key");
  }
  if (!options.ca_file.empty()) {
    if (!AddTrustBundle(ctx, pem.ca)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load the trust bundle ", options.ca_file, ": ", LastError()));
    }
    int mode = SSL_VERIFY_PEER;
    if (options.server && options.require_peer_certificate) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, mode, Verify);
  } else if (!options.server || options.require_peer_certificate) {
    return absl::InvalidArgumentError(
        "verifying the peer needs a trust bundle (ca); a mesh never trusts blindly");
  }
  if (options.server) {
    if (!options.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, c.get());
    // One session cache per context; tickets are keyed per context, so a new context (a
    // rotated trust bundle) never resumes an old session. A verifying server must name its
    // sessions' context, or OpenSSL fails every resumption attempt instead of declining it: a
    // random one per context, for the same reason.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    if (RAND_bytes(sid_ctx, sizeof(sid_ctx)) != 1 ||
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx)) != 1) {
      return absl::InternalError(absl::StrCat("session context: ", LastError()));
    }
  } else {
    // Sessions are kept by endpoint (the transport's session key), not in OpenSSL's cache,
    // which a client never looks up by itself.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, NewSession);
    for (const std::string& p : options.alpn) {
      c->alpn_wire_.push_back(static_cast<unsigned char>(p.size()));
      c->alpn_wire_.insert(c->alpn_wire_.end(), p.begin(), p.end());
    }
    if (!c->alpn_wire_.empty() &&
        SSL_CTX_set_alpn_protos(ctx, c->alpn_wire_.data(),
                                static_cast<unsigned>(c->alpn_wire_.size())) != 0) {
      return absl::InternalError(absl::StrCat("ALPN setup: ", LastError()));
    }
  }
  return std::shared_ptr<const Context>(std::move(c));
}

}  // namespace remora::tls
