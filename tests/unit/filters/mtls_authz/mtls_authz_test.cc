#include "filters/mtls_authz/mtls_authz.h"

#include <string>

#include "gtest/gtest.h"

namespace remora::filters {
namespace {

constexpr char kOrder[] = "spiffe://mesh.test/ns/shop/sa/order";

TEST(MtlsAuthzTest, PeerPatterns) {
  EXPECT_TRUE(PeerMatches(kOrder, kOrder));
  EXPECT_FALSE(PeerMatches(kOrder, "spiffe://mesh.test/ns/shop/sa/order2"));
  EXPECT_TRUE(PeerMatches("spiffe://mesh.test/ns/shop/*", kOrder));
  EXPECT_FALSE(PeerMatches("spiffe://mesh.test/ns/sh/*", kOrder));  // a segment, not a prefix
  EXPECT_FALSE(PeerMatches("spiffe://mesh.test/ns/shop/*", "spiffe://mesh.test/ns/shopping/x"));
  EXPECT_TRUE(PeerMatches("ns/shop/*", kOrder));
  EXPECT_TRUE(PeerMatches("ns/shop/*", "spiffe://other.test/ns/shop/sa/x"));  // any trust domain
  EXPECT_FALSE(PeerMatches("ns/shop/*", "spiffe://mesh.test/ns/shopping/sa/x"));
  EXPECT_FALSE(PeerMatches("ns/shop/*", "spiffe://mesh.test/x/ns/shop/sa/x"));
  EXPECT_TRUE(PeerMatches("*", kOrder));
  // No verified identity matches nothing, not even "*".
  EXPECT_FALSE(PeerMatches("*", ""));
  EXPECT_FALSE(PeerMatches("ns/shop/*", ""));
}

TEST(MtlsAuthzTest, DenyFirstThenAllow) {
  config::Authorization a;
  a.allow.push_back({{"ns/shop/*"}, {"GET", "POST"}, {"/orders*"}});
  a.allow.push_back({{"spiffe://mesh.test/ns/ops/sa/admin"}, {}, {}});
  a.deny.push_back({{"spiffe://mesh.test/ns/shop/sa/intern"}, {}, {}});
  std::string why;
  EXPECT_TRUE(Authorize(a, kOrder, "GET", "/orders/7", &why));
  EXPECT_TRUE(Authorize(a, kOrder, "POST", "/orders", &why));
  EXPECT_FALSE(Authorize(a, kOrder, "DELETE", "/orders/7", &why));
  EXPECT_EQ(why, "no allow rule matches");
  EXPECT_FALSE(Authorize(a, kOrder, "GET", "/admin", &why));
  EXPECT_TRUE(Authorize(a, "spiffe://mesh.test/ns/ops/sa/admin", "DELETE", "/admin", &why));
  // Denied though an allow rule would match.
  EXPECT_FALSE(Authorize(a, "spiffe://mesh.test/ns/shop/sa/intern", "GET", "/orders", &why));
  EXPECT_EQ(why, "deny rule 1 matches");
  EXPECT_FALSE(Authorize(a, "", "GET", "/orders", &why));  // unauthenticated
  // Deny rules alone: everything else goes, the unauthenticated too.
  config::Authorization deny_only;
  deny_only.deny.push_back({{}, {"DELETE"}, {}});
  EXPECT_TRUE(Authorize(deny_only, "", "GET", "/x", &why));
  EXPECT_FALSE(Authorize(deny_only, kOrder, "DELETE", "/x", &why));
}

// Rules see the path as routes do, without the query: a query must not slip a request past a
// deny rule, nor keep an allowed one out.
TEST(MtlsAuthzTest, PathRulesIgnoreTheQuery) {
  config::Authorization a;
  a.deny.push_back({{}, {}, {"/admin"}});
  a.allow.push_back({{"ns/shop/*"}, {}, {"/orders"}});
  std::string why;
  EXPECT_FALSE(Authorize(a, kOrder, "GET", "/admin?x=1", &why));
  EXPECT_EQ(why, "deny rule 1 matches");
  EXPECT_TRUE(Authorize(a, kOrder, "GET", "/orders?page=2", &why));
  EXPECT_FALSE(Authorize(a, kOrder, "GET", "/orders/7?x", &why));
}

}  // namespace
}  // namespace remora::filters
