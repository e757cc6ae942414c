#include "tls/spiffe.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tls/dev_ca.h"

// SPIFFE IDs and the SVID checks, on certificates the dev CA makes (verified by OpenSSL's own
// chain verification first, as the handshake will).

namespace remora::tls {
namespace {

TEST(SpiffeIdTest, Parses) {
  absl::StatusOr<SpiffeId> id = ParseSpiffeId("spiffe://example.org/ns/default/sa/web");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->trust_domain, "example.org");
  EXPECT_EQ(id->path, "/ns/default/sa/web");
  EXPECT_EQ(id->ToString(), "spiffe://example.org/ns/default/sa/web");
  ASSERT_TRUE(ParseSpiffeId("spiffe://td").ok());
  EXPECT_EQ(ParseSpiffeId("spiffe://td")->path, "");
}

TEST(SpiffeIdTest, RejectsWhatTheSpecRejects) {
  for (const char* bad :
       {"http://example.org/x", "spiffe://", "spiffe:///x",
        "spiffe://Example.org/x",       // upper case trust domain
        "spiffe://example.org:8080/x",  // a port
        "spiffe://user@example.org/x", "spiffe://example.org/", "spiffe://example.org//x",
        "spiffe://example.org/a/./b", "spiffe://example.org/a/../b", "spiffe://example.org/a?b",
        "spiffe://example.org/a#b", "spiffe://example.org/a%20b"}) {
    EXPECT_FALSE(ParseSpiffeId(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseSpiffeId("spiffe://td/" + std::string(2048, 'a')).ok());
  EXPECT_TRUE(CheckTrustDomain("example.org").ok());
  EXPECT_FALSE(CheckTrustDomain("").ok());
  EXPECT_FALSE(CheckTrustDomain("Example.org").ok());
}

TEST(SpiffeIdTest, Matchers) {
  SpiffeId web = *ParseSpiffeId("spiffe://td/ns/a/sa/web");
  EXPECT_TRUE(SpiffeMatcher{}.Matches(web));
  EXPECT_TRUE((SpiffeMatcher{"spiffe://td/ns/a/sa/web", ""}).Matches(web));
  EXPECT_FALSE((SpiffeMatcher{"spiffe://td/ns/a/sa/api", ""}).Matches(web));
  EXPECT_TRUE((SpiffeMatcher{"", "td"}).Matches(web));
  EXPECT_FALSE((SpiffeMatcher{"", "other"}).Matches(web));
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr Read(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(x);
}

// OpenSSL's verdict on `leaf` against the one `ca` (what the handshake checks before ours).
int Verify(const PemPair& ca, const PemPair& leaf) {
  X509Ptr root = Read(ca.cert), cert = Read(leaf.cert);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, root.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert.get(), nullptr);
  int ok = X509_verify_cert(ctx);
  int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return err;
}

class SvidTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new PemPair(*MakeCa("remora test CA", absl::Hours(1)));
    other_ca_ = new PemPair(*MakeCa("another CA", absl::Hours(1)));
  }
  static void TearDownTestSuite() {
    delete ca_;
    delete other_ca_;
  }
  static PemPair Issue(WorkloadOptions o, const PemPair* by = nullptr) {
    absl::StatusOr<PemPair> p = IssueWorkload(by != nullptr ? *by : *ca_, o);
    EXPECT_TRUE(p.ok()) << p.status();
    return *p;
  }
  static PemPair* ca_;
  static PemPair* other_ca_;
};
PemPair* SvidTest::ca_ = nullptr;
PemPair* SvidTest::other_ca_ = nullptr;

TEST_F(SvidTest, AWorkloadCertificateCarriesItsId) {
  WorkloadOptions o;
  o.uris = {"spiffe://td/ns/default/sa/web"};
  o.dns = {"web.default.svc"};
  PemPair w = Issue(o);
  EXPECT_EQ(Verify(*ca_, w), X509_V_OK);
  EXPECT_NE(Verify(*other_ca_, w), X509_V_OK);  // another CA does not vouch for it
  SvidError err;
  absl::StatusOr<SpiffeId> id = PeerSpiffeId(Read(w.cert).get(), &err);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(err, SvidError::kNone);
  EXPECT_EQ(id->ToString(), "spiffe://td/ns/default/sa/web");
  absl::StatusOr<std::string> about = DescribeCertificate(w.cert);
  ASSERT_TRUE(about.ok());
  EXPECT_NE(about->find("URI:spiffe://td/ns/default/sa/web"), std::string::npos) << *about;
  EXPECT_NE(about->find("DNS:web.default.svc"), std::string::npos) << *about;
  // Two issues never share a serial.
  EXPECT_NE(DescribeCertificate(Issue(o).cert)->substr(0, 40), about->substr(0, 40));
}

TEST_F(SvidTest, TheChecksOpenSslDoesNotMake) {
  SvidError err;
  WorkloadOptions two;
  two.uris = {"spiffe://td/a", "spiffe://td/b"};
  EXPECT_FALSE(PeerSpiffeId(Read(Issue(two).cert).get(), &err).ok());
  EXPECT_EQ(err, SvidError::kManyUris);

  WorkloadOptions none;
  none.dns = {"web"};
  EXPECT_FALSE(PeerSpiffeId(Read(Issue(none).cert).get(), &err).ok());
  EXPECT_EQ(err, SvidError::kNoSpiffeId);

  WorkloadOptions http;
  http.uris = {"https://td/a"};
  EXPECT_FALSE(PeerSpiffeId(Read(Issue(http).cert).get(), &err).ok());
  EXPECT_EQ(err, SvidError::kBadSpiffeId);

  WorkloadOptions ca;
  ca.uris = {"spiffe://td/a"};
  ca.ca = true;
  PemPair as_leaf = Issue(ca);
  EXPECT_EQ(Verify(*ca_, as_leaf), X509_V_OK);  // a valid chain: only our check refuses it
  EXPECT_FALSE(PeerSpiffeId(Read(as_leaf.cert).get(), &err).ok());
  EXPECT_EQ(err, SvidError::kCaAsLeaf);
  EXPECT_EQ(std::string(SvidErrorName(SvidError::kCaAsLeaf)), "ca_as_leaf");
}

TEST_F(SvidTest, ValidityWindowsAreOpenSsls) {
  WorkloadOptions expired;
  expired.uris = {"spiffe://td/a"};
  expired.not_before = absl::Now() - absl::Hours(2);
  expired.not_after = absl::Now() - absl::Hours(1);
  EXPECT_EQ(Verify(*ca_, Issue(expired)), X509_V_ERR_CERT_HAS_EXPIRED);
  WorkloadOptions future;
  future.uris = {"spiffe://td/a"};
  future.not_before = absl::Now() + absl::Hours(1);
  future.not_after = absl::Now() + absl::Hours(2);
  EXPECT_EQ(Verify(*ca_, Issue(future)), X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST_F(SvidTest, ANameCannotSmuggleInAnotherName) {
  WorkloadOptions o;
  o.uris = {"spiffe://td/a"};
  o.dns = {"web,URI:spiffe://td/admin"};
  absl::StatusOr<PemPair> p = IssueWorkload(*ca_, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("comma"), std::string::npos);
}

TEST_F(SvidTest, ACaKeyThatIsNotTheCertificatesIsRefused) {
  PemPair mixed{ca_->cert, other_ca_->key};
  WorkloadOptions o;
  o.uris = {"spiffe://td/a"};
  absl::StatusOr<PemPair> p = IssueWorkload(mixed, o);
  EXPECT_FALSE(p.ok());
}

}  // namespace
}  // namespace remora::tls
