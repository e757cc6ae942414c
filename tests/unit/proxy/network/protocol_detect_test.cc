#include "proxy/network/protocol_detect.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <string>

#include "gtest/gtest.h"

namespace remora::network {
namespace {

TEST(ProtocolDetectTest, Http1RequestLines) {
  EXPECT_EQ(DetectProtocol("GET / HTTP/1.1\r\n"), Protocol::kHttp1);
  EXPECT_EQ(DetectProtocol("POST "), Protocol::kHttp1);
  EXPECT_EQ(DetectProtocol("M-SEARCH * HTTP/1.1"), Protocol::kOpaque);  // not a plain token
  EXPECT_EQ(DetectProtocol("PROPFIND /x HTTP/1.1"), Protocol::kHttp1);
  EXPECT_EQ(DetectProtocol("GE"), Protocol::kNeedMore);
  EXPECT_EQ(DetectProtocol("GET"), Protocol::kNeedMore);
  EXPECT_EQ(DetectProtocol("get / HTTP/1.1"), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol(" GET"), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol(std::string(21, 'A') + " "), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol(std::string(21, 'A')), Protocol::kOpaque);
}

TEST(ProtocolDetectTest, Http2PrefaceEvenInPieces) {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  EXPECT_EQ(DetectProtocol(preface), Protocol::kHttp2);
  EXPECT_EQ(DetectProtocol(preface + "\x00\x00\x12\x04"), Protocol::kHttp2);
  for (size_t n = 1; n < preface.size(); ++n) {
    EXPECT_EQ(DetectProtocol(preface.substr(0, n)), Protocol::kNeedMore) << n;
  }
  // "PRI " as the method of something else: HTTP/1 once it departs from the preface.
  EXPECT_EQ(DetectProtocol("PRI /x HTTP/1.1\r\n"), Protocol::kHttp1);
}

TEST(ProtocolDetectTest, TlsClientHello) {
  EXPECT_EQ(DetectProtocol(std::string("\x16\x03\x01\x02\x00\x01", 6)), Protocol::kTls);
  EXPECT_EQ(DetectProtocol(std::string("\x16\x03\x03", 3)), Protocol::kTls);
  EXPECT_EQ(DetectProtocol(std::string("\x16", 1)), Protocol::kNeedMore);
  EXPECT_EQ(DetectProtocol(std::string("\x16\x03", 2)), Protocol::kNeedMore);
  EXPECT_EQ(DetectProtocol(std::string("\x16\x02\x01", 3)), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol(std::string("\x16\x03\x09", 3)), Protocol::kOpaque);
}

TEST(ProtocolDetectTest, AnythingElseIsOpaque) {
  EXPECT_EQ(DetectProtocol(std::string("\x00\x01\x02", 3)), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol("SSH-2.0-OpenSSH_9.2\r\n"), Protocol::kOpaque);
  EXPECT_EQ(DetectProtocol("*3\r\n$3\r\nSET\r\n"), Protocol::kOpaque);  // redis
  EXPECT_EQ(DetectProtocol(""), Protocol::kNeedMore);
}

// A real ClientHello, as OpenSSL's client writes it (TLS 1.3 with 1.2 allowed), asking for
// `sni` (empty: no SNI extension).
std::string ClientHello(const std::string& sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  SSL_connect(ssl);  // writes the ClientHello, then wants to read
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  std::string hello(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

TEST(ProtocolDetectTest, SniFromARealClientHello) {
  std::string hello = ClientHello("Api.Example.com");
  ASSERT_GT(hello.size(), 100u);
  EXPECT_EQ(DetectProtocol(hello), Protocol::kTls);
  std::string sni;
  EXPECT_EQ(ReadClientHelloSni(hello, &sni), SniResult::kFound);
  EXPECT_EQ(sni, "api.example.com");
  // Any prefix of it: more is needed.
  for (size_t n : {size_t{0}, size_t{4}, size_t{5}, size_t{50}, hello.size() - 1}) {
    EXPECT_EQ(ReadClientHelloSni(hello.substr(0, n), &sni), SniResult::kNeedMore) << n;
  }
  EXPECT_EQ(ReadClientHelloSni(ClientHello(""), &sni), SniResult::kNone);
  // A lying length inside the record never reads past it.
  std::string bad = hello;
  bad[5 + 4 + 2 + 32] = static_cast<char>(0xff);  // session_id length
  EXPECT_EQ(ReadClientHelloSni(bad, &sni), SniResult::kNone);
  EXPECT_EQ(ReadClientHelloSni("GET / HTTP/1.1\r\n", &sni), SniResult::kNone);
}

TEST(ProtocolDetectTest, SniPatterns) {
  EXPECT_TRUE(SniMatches("api.example.com", "API.example.com"));
  EXPECT_FALSE(SniMatches("api.example.com", "x.api.example.com"));
  EXPECT_TRUE(SniMatches("*.example.com", "a.example.com"));
  EXPECT_TRUE(SniMatches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(SniMatches("*.example.com", "example.com"));
  EXPECT_FALSE(SniMatches("*.example.com", "aexample.com"));
}

}  // namespace
}  // namespace remora::network
