#pragma once

// SPIFFE workload identity (spiffe.io, the SPIFFE ID and X509-SVID specifications): parsing and
// matching IDs, and reading a peer's ID from its certificate with the checks OpenSSL's chain
// verification does not make. A mesh peer is a workload, named by exactly one URI SAN of scheme
// spiffe in a leaf (not CA) certificate.

#include <openssl/x509.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace remora::tls {

// "spiffe://<trust domain>/<path>": the trust domain is lower-case letters, digits, '.', '-' and
// '_'; the path (possibly empty) is segments of letters, digits, '.', '-' and '_', none empty,
// "." or "..". No port, user info, query or fragment; at most 2048 bytes.
struct SpiffeId {
  std::string trust_domain;
  std::string path;  // "" or "/ns/default/sa/web"
  std::string ToString() const { return "spiffe://" + trust_domain + path; }
  bool operator==(const SpiffeId& o) const {
    return trust_domain == o.trust_domain && path == o.path;
  }
};

// The error names what is wrong, for config errors and handshake-failure log lines.
absl::StatusOr<SpiffeId> ParseSpiffeId(absl::string_view text);
// A bare trust domain ("example.org"), as a cluster's `trust_domain` names one.
absl::Status CheckTrustDomain(absl::string_view text);

// Why a certificate is not a workload's (SVID) certificate: the reason labels
// remora_tls_handshake_failures_total; the message goes to the log.
enum class SvidError {
  kNone,
  kCaAsLeaf,     // basicConstraints CA:TRUE on the peer's own certificate
  kNoSpiffeId,   // no URI SAN
  kManyUris,     // more than one URI SAN
  kBadSpiffeId,  // the URI SAN is not a valid SPIFFE ID
};
const char* SvidErrorName(SvidError e);

// The SPIFFE ID of a peer's leaf certificate, after its chain has been verified. On failure,
// *error says which check failed and the status why.
absl::StatusOr<SpiffeId> PeerSpiffeId(X509* leaf, SvidError* error);

// What a client expects of its server, or a server of its clients: one ID exactly, or any ID of
// a trust domain. Empty: any SPIFFE ID the trust bundle vouches for.
struct SpiffeMatcher {
  std::string exact;         // "spiffe://td/ns/x/sa/y"
  std::string trust_domain;  // "td"
  bool Matches(const SpiffeId& id) const;
  bool empty() const { return exact.empty() && trust_domain.empty(); }
  std::string ToString() const;
};

}  // namespace remora::tls
