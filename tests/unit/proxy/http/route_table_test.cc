#include "proxy/http/route_table.h"

#include <gtest/gtest.h>

#include "proxy/config/decode.h"
#include "proxy/server/snapshot.h"

namespace remora::http {
namespace {

class RouteTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* yaml = R"(
listeners:
  - name: web
    address: 127.0.0.1:0
    kind: http
    routes:
      - {name: exact, match: {path: /healthz}, cluster: a}
      - {name: host, match: {authority: api.local, prefix: /v1}, cluster: b}
      - {name: method, match: {prefix: /v1, method: POST}, cluster: a}
      - {name: header, match: {prefix: /, headers: [{name: x-canary, value: "1"}, {name: x-user}]}, cluster: b}
      - {name: regex, match: {regex: "/items/[0-9]+"}, cluster: b}
      - {name: fallback, match: {prefix: /}, cluster: a}
clusters:
  - {name: a, endpoints: [{address: 127.0.0.1:1}]}
  - {name: b, endpoints: [{address: 127.0.0.1:2}]}
)";
    std::vector<config::ConfigError> errors;
    ASSERT_TRUE(config::DecodeConfig(yaml, &config_, &errors)) << errors[0].Format("t");
    table_ = RouteTable(config_.listeners[0].routes, [](const std::string&) { return nullptr; });
  }
  std::string Match(const char* method, const char* authority, const char* path,
                    std::vector<std::pair<const char*, const char*>> headers = {}) {
    RequestHead h;
    h.method = method;
    h.authority = authority;
    h.normalized_path = path;
    for (auto& [k, v] : headers) h.headers.Add(k, v);
    const CompiledRoute* r = table_.Match(h);
    return r == nullptr ? "none" : r->config->name;
  }
  config::Config config_;
  RouteTable table_;
};

TEST_F(RouteTableTest, FirstMatchingRouteWins) {
  EXPECT_EQ(Match("GET", "x", "/healthz"), "exact");
  EXPECT_EQ(Match("GET", "x", "/healthz/more"), "fallback");
  EXPECT_EQ(Match("GET", "API.local:8080", "/v1/users"), "host");  // case and port ignored
  EXPECT_EQ(Match("POST", "other", "/v1/users"), "method");
  EXPECT_EQ(Match("GET", "other", "/v1/users"), "fallback");
  EXPECT_EQ(Match("GET", "x", "/p", {{"X-Canary", "1"}, {"x-user", ""}}), "header");
  EXPECT_EQ(Match("GET", "x", "/p", {{"x-canary", "2"}, {"x-user", "u"}}), "fallback");
  EXPECT_EQ(Match("GET", "x", "/items/42"), "regex");
  EXPECT_EQ(Match("GET", "x", "/items/42?q=1"), "regex");  // the query is not part of the path
  EXPECT_EQ(Match("GET", "x", "/items/42x"), "fallback");  // regex matches the whole path
  // A path too long for the recursive matcher never matches a regex route.
  std::string long_path = "/items/" + std::string(RouteTable::kMaxRegexPathBytes, '7');
  EXPECT_EQ(Match("GET", "x", long_path.c_str()), "fallback");
}

TEST(AuthorityMatchesTest, PortsAndIpv6) {
  EXPECT_TRUE(AuthorityMatches("svc:80", "svc"));
  EXPECT_TRUE(AuthorityMatches("svc:80", "svc:80"));
  EXPECT_FALSE(AuthorityMatches("svc:81", "svc:80"));
  EXPECT_TRUE(AuthorityMatches("[::1]:80", "[::1]"));
  EXPECT_FALSE(AuthorityMatches("svc.other", "svc"));
}

}  // namespace
}  // namespace remora::http
