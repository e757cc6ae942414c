#include "proxy/http/path.h"

#include <gtest/gtest.h>

namespace remora::http {
namespace {

std::string Norm(absl::string_view in) {
  std::string out;
  return NormalizePath(in, &out) ? out : "<bad>";
}

TEST(NormalizePathTest, CanonicalFormsRouteAlike) {
  EXPECT_EQ(Norm("/admin"), "/admin");
  EXPECT_EQ(Norm("/./admin"), "/admin");
  EXPECT_EQ(Norm("//admin"), "/admin");
  EXPECT_EQ(Norm("/%61dmin"), "/admin");
  EXPECT_EQ(Norm("/x/../admin"), "/admin");
  EXPECT_EQ(Norm("/x/%2E%2E/admin"), "/admin");  // escaped dots are dots
  EXPECT_EQ(Norm("/../../admin"), "/admin");     // never above the root
  EXPECT_EQ(Norm("/a/b/.."), "/a/");
  EXPECT_EQ(Norm("/a/b/."), "/a/b/");
  EXPECT_EQ(Norm("/a//b///"), "/a/b/");
  EXPECT_EQ(Norm("/"), "/");
  EXPECT_EQ(Norm("/.."), "/");
}

TEST(NormalizePathTest, ReservedEscapesStayEscapedAndQueryIsKept) {
  EXPECT_EQ(Norm("/a%2fb"), "/a%2Fb");  // an escaped slash is data, not a separator
  EXPECT_EQ(Norm("/a%20b"), "/a%20b");
  EXPECT_EQ(Norm("/a/../b?x=/../y&%61"), "/b?x=/../y&%61");
  EXPECT_EQ(Norm("*"), "*");
}

TEST(NormalizePathTest, MalformedEscapesAreRejected) {
  EXPECT_EQ(Norm("/a%"), "<bad>");
  EXPECT_EQ(Norm("/a%4"), "<bad>");
  EXPECT_EQ(Norm("/a%zz"), "<bad>");
  EXPECT_EQ(Norm("/a%00b"), "<bad>");
}

}  // namespace
}  // namespace remora::http
