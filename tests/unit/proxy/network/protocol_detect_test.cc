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
// `sni` (empty: no SNI extension) and offering `alpn` (wire format: length-prefixed names; empty:
// no ALPN extension).
std::string ClientHello(const std::string& sni, const std::string& alpn = "") {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (!alpn.empty()) {
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()),
                        static_cast<unsigned>(alpn.size()));
  }
  SSL_connect(ssl);  // writes the ClientHello, then wants to read
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  std::string hello(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

TEST(ProtocolDetectTest, SniAndAlpnFromARealClientHello) {
  std::string hello = ClientHello("Api.Example.com", std::string("\x02h2\x08http/1.1", 12));
  ASSERT_GT(hello.size(), 100u);
  EXPECT_EQ(DetectProtocol(hello), Protocol::kTls);
  ClientHelloInfo info;
  EXPECT_EQ(ReadClientHello(hello, &info), HelloResult::kFound);
  EXPECT_EQ(info.sni, "api.example.com");
  EXPECT_EQ(info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  // Any prefix of it: more is needed.
  for (size_t n : {size_t{0}, size_t{4}, size_t{5}, size_t{50}, hello.size() - 1}) {
    EXPECT_EQ(ReadClientHello(hello.substr(0, n), &info), HelloResult::kNeedMore) << n;
  }
  // Neither extension: a ClientHello all the same, asking for nothing in particular.
  EXPECT_EQ(ReadClientHello(ClientHello(""), &info), HelloResult::kFound);
  EXPECT_EQ(info.sni, "");
  EXPECT_TRUE(info.alpn.empty());
  EXPECT_EQ(ReadClientHello(ClientHello("", std::string("\x02h2", 3)), &info), HelloResult::kFound);
  EXPECT_EQ(info.sni, "");
  EXPECT_EQ(info.alpn, std::vector<std::string>{"h2"});
  // A lying length inside the record never reads past it, and reports nothing.
  std::string bad = hello;
  bad[5 + 4 + 2 + 32] = static_cast<char>(0xff);  // session_id length
  EXPECT_EQ(ReadClientHello(bad, &info), HelloResult::kNone);
  EXPECT_EQ(info.sni, "");
  EXPECT_TRUE(info.alpn.empty());
  EXPECT_EQ(ReadClientHello("GET / HTTP/1.1\r\n", &info), HelloResult::kNone);
}

// A ClientHello built by hand: a valid server_name extension, then one whose length runs past
// the extensions (found by the fuzzer). Nothing is reported from a hello that does not parse.
TEST(ProtocolDetectTest, AHelloWithABadExtensionReportsNothing) {
  std::string body;
  body += std::string("\x03\x03", 2) + std::string(32, 'r');  // version, random
  body += std::string("\x00", 1);                             // session_id
  body += std::string("\x00\x02\x13\x01", 4);                 // one cipher suite
  body += std::string("\x01\x00", 2);                         // null compression
  std::string sni_ext = std::string("\x00\x00\x00\x0b\x00\x09\x00\x00\x06", 9) + "a.test";
  std::string bad_ext = std::string("\x00\x10\xff\xff", 4);
  std::string exts = sni_ext + bad_ext;
  body += std::string(1, static_cast<char>(exts.size() >> 8)) +
          std::string(1, static_cast<char>(exts.size() & 0xff)) + exts;
  std::string hs = std::string("\x01\x00", 2) +
                   std::string(1, static_cast<char>(body.size() >> 8)) +
                   std::string(1, static_cast<char>(body.size() & 0xff)) + body;
  std::string record = std::string("\x16\x03\x01", 3) +
                       std::string(1, static_cast<char>(hs.size() >> 8)) +
                       std::string(1, static_cast<char>(hs.size() & 0xff)) + hs;
  ClientHelloInfo info;
  EXPECT_EQ(ReadClientHello(record, &info), HelloResult::kNone);
  EXPECT_EQ(info.sni, "");
  // The same hello without the bad extension reads.
  exts = sni_ext;
  std::string good_body = body.substr(0, body.size() - bad_ext.size() - sni_ext.size() - 2);
  good_body += std::string(1, '\0') + std::string(1, static_cast<char>(exts.size())) + exts;
  hs = std::string("\x01\x00", 2) + std::string(1, static_cast<char>(good_body.size() >> 8)) +
       std::string(1, static_cast<char>(good_body.size() & 0xff)) + good_body;
  record = std::string("\x16\x03\x01", 3) + std::string(1, static_cast<char>(hs.size() >> 8)) +
           std::string(1, static_cast<char>(hs.size() & 0xff)) + hs;
  EXPECT_EQ(ReadClientHello(record, &info), HelloResult::kFound);
  EXPECT_EQ(info.sni, "a.test");
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
