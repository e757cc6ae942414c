#include "tls/dev_ca.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace remora::tls {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

absl::Status OpenSslError(absl::string_view what) {
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": ", buf));
}

Ptr<EVP_PKEY> NewKey() { return Ptr<EVP_PKEY>(EVP_EC_gen("P-256")); }

std::string ToPem(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool SetTime(ASN1_TIME* field, absl::Time t) {
  return ASN1_TIME_set(field, static_cast<time_t>(absl::ToUnixSeconds(t))) != nullptr;
}

// A random positive 127-bit serial: unique enough that a rotated certificate always differs.
bool SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return false;
  bytes[0] &= 0x7f;
  Ptr<BIGNUM> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  return bn != nullptr && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A v3 certificate for `key`, named `common_name`, valid [not_before, not_after].
Ptr<X509> NewCert(EVP_PKEY* key, const std::string& common_name, absl::Time not_before,
                  absl::Time not_after) {
  Ptr<X509> cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1 || !SetRandomSerial(cert.get()) ||
      !SetTime(X509_getm_notBefore(cert.get()), not_before) ||
      !SetTime(X509_getm_notAfter(cert.get()), not_after) ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return nullptr;
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return nullptr;
  }
  return cert;
}

Ptr<X509> ReadCert(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Ptr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Ptr<EVP_PKEY> ReadKey(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Ptr<EVP_PKEY>(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

absl::StatusOr<PemPair> MakeCa(const std::string& common_name, absl::Duration ttl) {
  Ptr<EVP_PKEY> key = NewKey();
  if (key == nullptr) return OpenSslError("generating a P-256 key");
  absl::Time now = absl::Now();
  Ptr<X509> cert = NewCert(key.get(), common_name, now - absl::Minutes(5), now + ttl);
  if (cert == nullptr) return OpenSslError("building the CA certificate");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  if (!AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the CA certificate");
  }
  return PemPair{ToPem(cert.get()), ToPem(key.get())};
}

absl::StatusOr<PemPair> IssueWorkload(const PemPair& ca, const WorkloadOptions& options) {
  Ptr<X509> ca_cert = ReadCert(ca.cert);
  Ptr<EVP_PKEY> ca_key = ReadKey(ca.key);
  if (ca_cert == nullptr || ca_key == nullptr) return OpenSslError("reading the CA");
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CA key does not match the CA certificate");
  }
  Ptr<EVP_PKEY> key = NewKey();
  if (key == nullptr) return OpenSslError("generating a P-256 key");
  std::string cn = !options.uris.empty()  ? options.uris[0]
                   : !options.dns.empty() ? options.dns[0]
                                          : std::string("workload");
  // A CN is at most 64 bytes; the identity is in the SAN anyway.
  if (cn.size() > 64) cn.resize(64);
  Ptr<X509> cert = NewCert(key.get(), cn, options.not_before, options.not_after);
  if (cert == nullptr) return OpenSslError("building the certificate");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  std::vector<std::string> sans;
  for (const std::string& u : options.uris) sans.push_back("URI:" + u);
  for (const std::string& d : options.dns) sans.push_back("DNS:" + d);
  for (const std::string& san : sans) {
    // The names are joined for OpenSSL's config syntax: a comma would start another name.
    if (san.find_first_of(",\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("a name may not hold a comma: ", san));
    }
  }
  bool ok = AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints,
                         options.ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
            AddExtension(cert.get(), ca_cert.get(), NID_key_usage,
                         options.ca ? "critical,digitalSignature,keyCertSign"
                                    : "critical,digitalSignature") &&
            AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
            AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always") &&
            (sans.empty() || AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name,
                                          absl::StrJoin(sans, ",")));
  if (!ok) return OpenSslError("adding the certificate's extensions");
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the certificate");
  }
  return PemPair{ToPem(cert.get()), ToPem(key.get())};
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents, int mode) {
  // A fresh file only (O_EXCL, no symlink followed), at the mode asked whatever the umask: a
  // stale or planted temp file never decides who can read a key.
  unsigned char suffix[8];
  RAND_bytes(suffix, sizeof(suffix));
  std::string tmp = absl::StrCat(
      path, ".tmp.", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(suffix), 8)));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", tmp));
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot set the mode of ", tmp));
  }
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::ErrnoToStatus(err, absl::StrCat("cannot write ", tmp));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot write ", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DescribeCertificate(const std::string& pem) {
  Ptr<X509> cert = ReadCert(pem);
  if (cert == nullptr) return OpenSslError("reading the certificate");
  Ptr<BIGNUM> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  char* hex = serial != nullptr ? BN_bn2hex(serial.get()) : nullptr;
  if (hex == nullptr) return OpenSslError("reading the serial");
  std::string out = absl::StrCat("serial ", hex);
  OPENSSL_free(hex);
  GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    const ASN1_IA5STRING* s = n->type == GEN_URI   ? n->d.uniformResourceIdentifier
                              : n->type == GEN_DNS ? n->d.dNSName
                                                   : nullptr;
    if (s == nullptr) continue;
    absl::StrAppend(&out, n->type == GEN_URI ? ", URI:" : ", DNS:",
                    absl::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      static_cast<size_t>(ASN1_STRING_length(s))));
  }
  GENERAL_NAMES_free(names);
  char until[64];
  ASN1_TIME* na = X509_getm_notAfter(cert.get());
  struct tm tm {};
  if (ASN1_TIME_to_tm(na, &tm) != 1) return OpenSslError("reading the expiry");
  std::strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
  absl::StrAppend(&out, ", valid until ", until);
  return out;
}

}  // namespace remora::tls
