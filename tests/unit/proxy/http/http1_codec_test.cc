#include "proxy/http/http1_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

// The HTTP/1 codecs fed raw bytes: every vector is parsed whole and split at every byte offset,
// and must give the same events (or the same error) every time.

namespace remora::http {
namespace {

// Records what a server codec decodes as one text log.
class RequestLog : public RequestDecoder {
 public:
  void OnHeaders(RequestHead& h, bool end) override {
    absl::StrAppend(&log, "H ", h.method, " ", h.path, " auth=", h.authority, " v=1.",
                    h.version_minor, " ka=", h.keep_alive, " up=", h.upgrade, " [");
    for (size_t i = 0; i < h.headers.size(); ++i) {
      absl::StrAppend(&log, h.headers.name(i), ":", h.headers.value(i), ";");
    }
    absl::StrAppend(&log, "] end=", end, "\n");
  }
  void OnData(buffer::Buffer& d, bool end) override {
    // Coalesce body pieces: how reads split them is not part of the contract.
    body_ += d.ToString();
    d.Clear();
    if (end) Flush(" end");
  }
  void OnTrailers(HeaderMap& t) override {
    Flush("");
    absl::StrAppend(&log, "T [");
    for (size_t i = 0; i < t.size(); ++i) absl::StrAppend(&log, t.name(i), ":", t.value(i), ";");
    absl::StrAppend(&log, "]\n");
  }
  void Flush(const char* suffix) {
    absl::StrAppend(&log, "D ", body_, suffix, "\n");
    body_.clear();
  }
  std::string log;

 private:
  std::string body_;
};

// Parses `input` in pieces cut at `cuts`; resumes after each message. Returns the event log, or
// "ERROR <status>".
std::string ParseRequests(absl::string_view input, const std::vector<size_t>& cuts,
                          HeaderLimits limits = {}) {
  buffer::Buffer out;
  Http1ServerCodec codec(limits, out);
  RequestLog log;
  codec.set_decoder(&log);
  buffer::Buffer in;
  size_t pos = 0;
  std::vector<size_t> all = cuts;
  all.push_back(input.size());
  for (size_t cut : all) {
    in.Append(input.substr(pos, cut - pos));
    pos = cut;
    while (!in.empty()) {
      DispatchResult r = codec.Dispatch(in);
      if (r == DispatchResult::kError) return absl::StrCat(log.log, "ERROR ", codec.error_status());
      if (r == DispatchResult::kMessageComplete || r == DispatchResult::kUpgrade) {
        log.log += r == DispatchResult::kUpgrade ? "UPGRADE\n" : "COMPLETE\n";
        codec.Resume();
        continue;
      }
      break;
    }
  }
  return log.log;
}

void ExpectSameAtEverySplit(absl::string_view input, HeaderLimits limits = {}) {
  std::string whole = ParseRequests(input, {}, limits);
  for (size_t i = 1; i < input.size(); ++i) {
    ASSERT_EQ(ParseRequests(input, {i}, limits), whole) << "split at " << i;
  }
  // And byte by byte.
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
  ASSERT_EQ(ParseRequests(input, every, limits), whole) << "byte by byte";
}

TEST(Http1ServerCodecTest, GetWithHopByHopFieldsRemoved) {
  std::string in =
      "GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nX-Keep: 1\r\nConnection: keep-alive, X-Secret\r\n"
      "X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n";
  EXPECT_EQ(ParseRequests(in, {}),
            "H GET /a?b=1 auth=svc v=1.1 ka=1 up= [X-Keep:1;] end=1\nCOMPLETE\n");
  ExpectSameAtEverySplit(in);
}

TEST(Http1ServerCodecTest, ContentLengthChunkedTrailersAndPipelining) {
  std::string in =
      "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n"
      "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(ParseRequests(in, {}),
            "H POST /p auth=a v=1.1 ka=1 up= [] end=0\nD hello end\nCOMPLETE\n"
            "H POST /c auth=a v=1.1 ka=1 up= [] end=0\nD abcde\nT [X-Sum:9;]\nCOMPLETE\n"
            "H GET /last auth=a v=1.1 ka=0 up= [] end=1\nCOMPLETE\n");
  ExpectSameAtEverySplit(in);
}

TEST(Http1ServerCodecTest, AbsoluteFormHttp10AndUpgrades) {
  EXPECT_EQ(ParseRequests("GET http://h:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n", {}),
            "H GET /x?y auth=h:81 v=1.1 ka=1 up= [] end=1\nCOMPLETE\n");
  EXPECT_EQ(ParseRequests("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", {}),
            "H GET / auth=h v=1.1 ka=1 up= [] end=1\nCOMPLETE\n");
  EXPECT_EQ(ParseRequests("GET / HTTP/1.0\r\n\r\n", {}),
            "H GET / auth= v=1.0 ka=0 up= [] end=1\nCOMPLETE\n");
  std::string ws =
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: k\r\n\r\n";
  EXPECT_EQ(ParseRequests(ws, {}),
            "H GET /chat auth=a v=1.1 ka=1 up=websocket [Sec-WebSocket-Key:k;] end=1\nUPGRADE\n");
  ExpectSameAtEverySplit(ws);
  // An upgrade with a body is served as a plain request: no tunnel before the body is done.
  EXPECT_EQ(ParseRequests("POST /u HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nContent-Length: 2\r\n\r\nhi",
                          {}),
            "H POST /u auth=a v=1.1 ka=1 up= [] end=0\nD hi end\nCOMPLETE\n");
  // h2c is stripped and the request served as HTTP/1.1 (RFC 9113 3.1).
  EXPECT_EQ(ParseRequests("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: x\r\n"
                          "Connection: Upgrade, HTTP2-Settings\r\n\r\n",
                          {}),
            "H GET / auth=a v=1.1 ka=1 up= [] end=1\nCOMPLETE\n");
}

struct BadCase {
  const char* name;
  std::string input;
  int status;
};

TEST(Http1ServerCodecTest, MalformedRequestsAreRejectedAtEverySplit) {
  std::vector<BadCase> cases = {
      {"request line", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400},
      {"CL+TE",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
       400},
      {"chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
       400},
      {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n", 400},
      {"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"CR LF CR X", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
      {"asterisk GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"ftp target", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"gzip under chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string expected = absl::StrCat("ERROR ", c.status);
    std::string whole = ParseRequests(c.input, {});
    ASSERT_TRUE(absl::EndsWith(whole, expected)) << whole;
    EXPECT_EQ(whole.find("\nH "), std::string::npos) << "a head got through: " << whole;
    for (size_t i = 1; i < c.input.size(); ++i) {
      ASSERT_EQ(ParseRequests(c.input, {i}), whole) << "split at " << i;
    }
  }
}

TEST(Http1ServerCodecTest, HeaderLimitsGive431) {
  HeaderLimits limits{256, 4};
  EXPECT_EQ(ParseRequests(
                absl::StrCat("GET / HTTP/1.1\r\nHost: a\r\nX: ", std::string(300, 'v'), "\r\n\r\n"),
                {}, limits),
            "ERROR 431");
  EXPECT_EQ(ParseRequests("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", {},
                          limits),
            "ERROR 431");
  ExpectSameAtEverySplit("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n",
                         limits);
}

TEST(Http1ServerCodecTest, EncodesResponsesForTheClientsVersion) {
  buffer::Buffer out;
  Http1ServerCodec codec({}, out);
  RequestLog log;
  codec.set_decoder(&log);
  buffer::Buffer in;
  in.Append("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(codec.Dispatch(in), DispatchResult::kMessageComplete);
  ResponseHead h;
  h.status = 200;
  h.headers.Add("X-Case", "Kept");
  h.framing = Framing::kUntilClose;
  codec.EncodeHeaders(h, false);
  buffer::Buffer body;
  body.Append("hello");
  codec.EncodeData(body, true);
  EXPECT_EQ(out.ToString(),
            "HTTP/1.1 200 OK\r\nX-Case: Kept\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_TRUE(codec.response_keeps_alive());

  // The same response to an HTTP/1.0 client: no chunking, the body ends with the connection.
  out.Clear();
  codec.Resume();
  in.Append("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(codec.Dispatch(in), DispatchResult::kMessageComplete);
  codec.EncodeHeaders(h, false);
  body.Append("hello");
  codec.EncodeData(body, true);
  EXPECT_EQ(out.ToString(), "HTTP/1.1 200 OK\r\nX-Case: Kept\r\nConnection: close\r\n\r\nhello");
  EXPECT_FALSE(codec.response_keeps_alive());
}

TEST(Http1ServerCodecTest, ResponseToHeadDropsBodyBytes) {
  buffer::Buffer out;
  Http1ServerCodec codec({}, out);
  RequestLog log;
  codec.set_decoder(&log);
  buffer::Buffer in;
  in.Append("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(codec.Dispatch(in), DispatchResult::kMessageComplete);
  ResponseHead h;
  h.status = 404;
  h.framing = Framing::kContentLength;
  h.content_length = 4;
  codec.EncodeHeaders(h, false);
  buffer::Buffer body;
  body.Append("text");
  codec.EncodeData(body, true);
  EXPECT_EQ(out.ToString(), "HTTP/1.1 404 Not Found\r\n\r\n");
}

// ---- client side ------------------------------------------------------------------------------

class ResponseLog : public ResponseDecoder {
 public:
  void OnInformational(ResponseHead& h) override { absl::StrAppend(&log, "I ", h.status, "\n"); }
  void OnHeaders(ResponseHead& h, bool end) override {
    absl::StrAppend(&log, "H ", h.status, " ka=", h.keep_alive, " [");
    for (size_t i = 0; i < h.headers.size(); ++i) {
      absl::StrAppend(&log, h.headers.name(i), ":", h.headers.value(i), ";");
    }
    absl::StrAppend(&log, "] end=", end, "\n");
  }
  void OnData(buffer::Buffer& d, bool end) override {
    body += d.ToString();
    d.Clear();
    if (end) {
      absl::StrAppend(&log, "D ", body, " end\n");
      body.clear();
    }
  }
  void OnTrailers(HeaderMap& t) override {
    absl::StrAppend(&log, "D ", body, "\nT ", t.size(), "\n");
    body.clear();
  }
  std::string log, body;
};

std::string ParseResponse(absl::string_view method, absl::string_view input, size_t cut,
                          bool eof = false) {
  buffer::Buffer out;
  Http1ClientCodec codec({}, out);
  ResponseLog log;
  codec.set_decoder(&log);
  RequestHead req;
  req.method = std::string(method);
  req.path = "/";
  req.authority = "a";
  codec.EncodeHeaders(req, true);
  buffer::Buffer in;
  in.Append(input.substr(0, cut));
  DispatchResult r = codec.Dispatch(in);
  if (r == DispatchResult::kNeedMore) {
    in.Append(input.substr(cut));
    r = codec.Dispatch(in);
  }
  if (r == DispatchResult::kNeedMore && eof) {
    log.log += codec.OnEndOfStream() ? "EOF-OK\n" : "EOF-CUT\n";
  }
  if (r == DispatchResult::kError) return absl::StrCat(log.log, "ERROR ", codec.error_status());
  return log.log;
}

void ExpectResponse(absl::string_view method, absl::string_view input, absl::string_view want,
                    bool eof = false) {
  for (size_t i = 0; i <= input.size(); ++i) {
    ASSERT_EQ(ParseResponse(method, input, i, eof), want) << "split at " << i;
  }
}

TEST(Http1ClientCodecTest, ResponsesAtEverySplit) {
  ExpectResponse("GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok",
                 "H 200 ka=1 [X:y;] end=0\nD ok end\n");
  ExpectResponse(
      "GET",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nok\r\n0\r\nA: b\r\n\r\n",
      "I 100\nH 200 ka=1 [] end=0\nD ok\nT 1\n");
  ExpectResponse("GET",
                 "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                 "I 103\nH 200 ka=1 [] end=1\n");
  // HEAD: no body whatever the length says, and the length is kept for the client.
  ExpectResponse("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                 "H 200 ka=1 [Content-Length:99;] end=1\n");
  ExpectResponse("GET", "HTTP/1.1 204 No Content\r\n\r\n", "H 204 ka=1 [] end=1\n");
  // A length on a bodiless status describes no bytes of this message (found by the fuzzer:
  // llhttp would read the next response as this one's body).
  ExpectResponse("GET",
                 "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                 "I 100\nH 200 ka=1 [] end=0\nD ok end\n");
  ExpectResponse("GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                 "H 304 ka=1 [Content-Length:10;] end=1\n");
  ExpectResponse("GET", "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
                 "H 304 ka=1 [ETag:\"e\";] end=1\n");
  // No length: read to close, and not reusable.
  ExpectResponse("GET", "HTTP/1.1 200 OK\r\n\r\nuntil close",
                 "H 200 ka=0 [] end=0\nD until close end\nEOF-OK\n", /*eof=*/true);
  ExpectResponse("GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                 "H 200 ka=1 [] end=0\nEOF-CUT\n", /*eof=*/true);
}

TEST(Http1ClientCodecTest, MalformedResponses) {
  EXPECT_EQ(ParseResponse("GET", "HTTP/1.1 2000 What\r\n\r\n", 0), "ERROR 400");
  EXPECT_EQ(ParseResponse("GET", "HTTP/2.0 200 OK\r\n\r\n", 0), "ERROR 502");
  EXPECT_EQ(ParseResponse("GET", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0), "ERROR 400");
  EXPECT_EQ(ParseResponse("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0),
            "ERROR 502");
  EXPECT_EQ(ParseResponse("GET",
                          "HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 0),
            "ERROR 502");
}

}  // namespace
}  // namespace remora::http
