#include "tls/spiffe.h"

#include <openssl/x509v3.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace remora::tls {

namespace {

constexpr size_t kMaxIdBytes = 2048;
constexpr size_t kMaxTrustDomainBytes = 255;

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool IsPathChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

}  // namespace

absl::Status CheckTrustDomain(absl::string_view td) {
  if (td.empty()) return absl::InvalidArgumentError("the trust domain is empty");
  if (td.size() > kMaxTrustDomainBytes) {
    return absl::InvalidArgumentError("the trust domain is longer than 255 bytes");
  }
  for (char c : td) {
    if (!IsTrustDomainChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the trust domain \"", td,
                       "\" may hold only lower-case letters, digits, '.', '-' and '_'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SpiffeId> ParseSpiffeId(absl::string_view text) {
  if (text.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError("a SPIFFE ID is at most 2048 bytes");
  }
  constexpr absl::string_view kScheme = "spiffe://";
  if (!absl::StartsWith(text, kScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a SPIFFE ID (spiffe://trust-domain/path)"));
  }
  absl::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find('/');
  absl::string_view td = rest.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash);
  if (absl::Status s = CheckTrustDomain(td); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": ", s.message()));
  }
  if (!path.empty()) {
    for (absl::string_view seg : absl::StrSplit(path.substr(1), '/')) {
      if (seg.empty() || seg == "." || seg == "..") {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", text, "\": a path segment is empty, \".\" or \"..\""));
      }
      for (char c : seg) {
        if (!IsPathChar(c)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "\"", text, "\": the path may hold only letters, digits, '.', '-', '_' and '/'"));
        }
      }
    }
  }
  return SpiffeId{std::string(td), std::string(path)};
}

const char* SvidErrorName(SvidError e) {
  switch (e) {
    case SvidError::kNone:
      return "none";
    case SvidError::kCaAsLeaf:
      return "ca_as_leaf";
    case SvidError::kNoSpiffeId:
      return "no_spiffe_id";
    case SvidError::kManyUris:
      return "many_uri_sans";
    case SvidError::kBadSpiffeId:
      return "bad_spiffe_id";
  }
  return "unknown";
}

absl::StatusOr<SpiffeId> PeerSpiffeId(X509* leaf, SvidError* error) {
  *error = SvidError::kNone;
  if (leaf == nullptr) {
    *error = SvidError::kNoSpiffeId;
    return absl::InvalidArgumentError("the peer sent no certificate");
  }
  // X509_get_extension_flags computes the cached flags (EXFLAG_CA from basicConstraints).
  // An SVID leaf may not be a CA, nor sign certificates or CRLs (X509-SVID 4.3).
  if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0 ||
      (X509_get_key_usage(leaf) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != 0) {
    *error = SvidError::kCaAsLeaf;
    return absl::InvalidArgumentError("the peer's certificate is a CA certificate, not a leaf");
  }
  GENERAL_NAMES* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  std::string uri;
  int uris = 0;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    ++uris;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
               static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  if (uris == 0) {
    *error = SvidError::kNoSpiffeId;
    return absl::InvalidArgumentError("the peer's certificate has no URI SAN (no SPIFFE ID)");
  }
  if (uris > 1) {
    *error = SvidError::kManyUris;
    return absl::InvalidArgumentError(
        absl::StrCat("the peer's certificate has ", uris, " URI SANs; an SVID has exactly one"));
  }
  absl::StatusOr<SpiffeId> id = ParseSpiffeId(uri);
  if (!id.ok()) *error = SvidError::kBadSpiffeId;
  return id;
}

bool SpiffeMatcher::Matches(const SpiffeId& id) const {
  if (!exact.empty()) return id.ToString() == exact;
  if (!trust_domain.empty()) return id.trust_domain == trust_domain;
  return true;
}

std::string SpiffeMatcher::ToString() const {
  if (!exact.empty()) return exact;
  if (!trust_domain.empty()) return absl::StrCat("any ID of trust domain ", trust_domain);
  return "any SPIFFE ID";
}

}  // namespace remora::tls
