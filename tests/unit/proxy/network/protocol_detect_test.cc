#include "proxy/network/protocol_detect.h"

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

}  // namespace
}  // namespace remora::network
