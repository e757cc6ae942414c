#include "proxy/admin/admin_server.h"

#include <gtest/gtest.h>

namespace remora::admin {
namespace {

class AdminRoutingTest : public ::testing::Test {
 protected:
  AdminRoutingTest() : server_(dispatcher_, "s3cret") {
    server_.AddRoute("GET", "/ready", false,
                     [](const Request&) { return Response::Text(200, "ok"); });
    server_.AddRoute("POST", "/drain", true,
                     [](const Request&) { return Response::Text(202, "draining"); });
  }
  Request Req(std::string method, std::string path, std::string auth = "", bool trusted = false) {
    Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.authorization = std::move(auth);
    r.trusted = trusted;
    return r;
  }
  event::UvDispatcher dispatcher_;
  AdminServer server_;
};

TEST_F(AdminRoutingTest, RoutesByPathAndMethod) {
  EXPECT_EQ(server_.Handle(Req("GET", "/ready")).status, 200);
  EXPECT_EQ(server_.Handle(Req("HEAD", "/ready")).status, 200);
  EXPECT_EQ(server_.Handle(Req("GET", "/nope")).status, 404);
  Response r = server_.Handle(Req("DELETE", "/ready"));
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "GET");
}

TEST_F(AdminRoutingTest, MutatingRoutesNeedTheTokenOrTheUnixSocket) {
  EXPECT_EQ(server_.Handle(Req("POST", "/drain")).status, 401);
  EXPECT_EQ(server_.Handle(Req("POST", "/drain", "Bearer wrong!")).status, 401);
  EXPECT_EQ(server_.Handle(Req("POST", "/drain", "Bearer s3cre")).status, 401);
  EXPECT_EQ(server_.Handle(Req("POST", "/drain", "Basic s3cret")).status, 401);
  EXPECT_EQ(server_.Handle(Req("POST", "/drain", "Bearer s3cret")).status, 202);
  EXPECT_EQ(server_.Handle(Req("POST", "/drain", "", /*trusted=*/true)).status, 202);
}

TEST(AdminNoTokenTest, WithoutATokenOnlyTheUnixSocketMayMutate) {
  event::UvDispatcher d;
  AdminServer server(d, "");
  server.AddRoute("POST", "/drain", true, [](const Request&) { return Response::Text(202, ""); });
  Request r;
  r.method = "POST";
  r.path = "/drain";
  r.authorization = "Bearer ";
  EXPECT_EQ(server.Handle(r).status, 401);
  r.trusted = true;
  EXPECT_EQ(server.Handle(r).status, 202);
}

TEST(RequestTest, QueryParam) {
  Request r;
  r.query = "a=1&level=debug&b";
  EXPECT_EQ(r.QueryParam("level"), "debug");
  EXPECT_EQ(r.QueryParam("b"), "");
  EXPECT_EQ(r.QueryParam("zz"), "");
}

}  // namespace
}  // namespace remora::admin
