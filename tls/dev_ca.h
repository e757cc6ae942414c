#pragma once

// A development certificate authority: ECDSA P-256 keys, a self-signed CA, and workload
// certificates (X509-SVIDs) it signs, enough to run the examples and tests with no other tool
// (`remora cert ca`, `remora cert issue`). Not a production CA: no revocation, no key protection
// beyond file permissions.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace remora::tls {

struct PemPair {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (PKCS#8)
};

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign) named `common_name`.
absl::StatusOr<PemPair> MakeCa(const std::string& common_name, absl::Duration ttl);

struct WorkloadOptions {
  // URI SANs: one SPIFFE ID for an SVID. (Tests give none or several to make bad ones.)
  std::vector<std::string> uris;
  std::vector<std::string> dns;                            // DNS SANs, optional
  absl::Time not_before = absl::Now() - absl::Minutes(5);  // a little clock skew allowed
  absl::Time not_after = absl::Now() + absl::Hours(24);
  bool ca = false;  // tests: a CA certificate used as a leaf
};

// A certificate for `options`, with a fresh key, signed by `ca`: a leaf for both TLS server and
// client authentication.
absl::StatusOr<PemPair> IssueWorkload(const PemPair& ca, const WorkloadOptions& options);

// Writes `contents` to `path` whole or not at all (a temporary file renamed over it), with the
// mode given (0600 for keys).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents, int mode);

// Serial number (hex) and subject alternative names of a PEM certificate, for `remora cert` to
// print what it made.
absl::StatusOr<std::string> DescribeCertificate(const std::string& pem);

}  // namespace remora::tls
