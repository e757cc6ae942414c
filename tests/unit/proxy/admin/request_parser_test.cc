#include "proxy/admin/request_parser.h"

#include <string>

#include "gtest/gtest.h"

namespace remora::admin {
namespace {

using State = RequestParser::State;

TEST(RequestParserTest, ParsesMethodPathQueryAndAuthorizationAcrossSplits) {
  const std::string raw =
      "POST /logging?level=debug&x=1 HTTP/1.1\r\nHost: a\r\nauthorization: Bearer t0k\r\n"
      "Content-Length: 4\r\n\r\nbody";
  for (size_t cut = 1; cut < raw.size(); ++cut) {
    RequestParser p;
    EXPECT_EQ(p.Feed(raw.substr(0, cut)), State::kIncomplete) << cut;
    ASSERT_EQ(p.Feed(raw.substr(cut)), State::kComplete) << cut;
    EXPECT_EQ(p.request().method, "POST");
    EXPECT_EQ(p.request().path, "/logging");
    EXPECT_EQ(p.request().QueryParam("level"), "debug");
    EXPECT_EQ(p.request().QueryParam("x"), "1");
    EXPECT_EQ(p.request().QueryParam("missing"), "");
    EXPECT_EQ(p.request().authorization, "Bearer t0k");
    EXPECT_EQ(p.request().body, "body");
  }
}

TEST(RequestParserTest, MalformedRequestIs400) {
  RequestParser p;
  EXPECT_EQ(p.Feed("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), State::kError);
  EXPECT_EQ(p.error_status(), 400);
  EXPECT_NE(std::string(p.error_reason()), "");
}

TEST(RequestParserTest, OversizedHeadersAre431) {
  RequestParser p;
  std::string raw = "GET / HTTP/1.1\r\nX-Big: " + std::string(RequestParser::kMaxHeaderBytes, 'a');
  EXPECT_EQ(p.Feed(raw), State::kError);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(RequestParserTest, OversizedBodyIs413) {
  RequestParser p;
  size_t n = RequestParser::kMaxBodyBytes + 1;
  std::string raw =
      "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n" + std::string(n, 'b');
  EXPECT_EQ(p.Feed(raw), State::kError);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(RequestParserTest, InputAfterTheFirstRequestIsIgnored) {
  RequestParser p;
  EXPECT_EQ(p.Feed("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), State::kComplete);
  EXPECT_EQ(p.request().path, "/a");
  EXPECT_EQ(p.Feed("garbage"), State::kComplete);
}

}  // namespace
}  // namespace remora::admin
