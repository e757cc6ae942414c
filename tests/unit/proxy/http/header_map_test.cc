#include "proxy/http/header_map.h"

#include <string>

#include "gtest/gtest.h"

namespace remora::http {
namespace {

std::string Dump(const HeaderMap& h) {
  std::string out;
  for (size_t i = 0; i < h.size(); ++i) {
    out += std::string(h.name(i)) + "=" + std::string(h.value(i)) + ";";
  }
  return out;
}

TEST(HeaderMapTest, SetReplacesTheFirstFieldInPlaceAndDropsTheRest) {
  HeaderMap h;
  h.Add("a", "1");
  h.Add("X-Thing", "first");
  h.Add("b", "2");
  h.Add("x-thing", "second");
  h.Set("x-THING", "v");  // shorter: written over the old bytes
  EXPECT_EQ(Dump(h), "a=1;X-Thing=v;b=2;");
  h.Set("x-thing", "a much longer value than before");
  EXPECT_EQ(Dump(h), "a=1;X-Thing=a much longer value than before;b=2;");
  h.Set("x-thing", "");
  EXPECT_EQ(Dump(h), "a=1;X-Thing=;b=2;");
  h.Set("new", "n");  // absent: added at the end
  EXPECT_EQ(Dump(h), "a=1;X-Thing=;b=2;new=n;");
  // A field added after an in-place rewrite is stored apart from it.
  h.SetValue(0, "12345");
  h.Add("c", "3");
  EXPECT_EQ(Dump(h), "a=12345;X-Thing=;b=2;new=n;c=3;");
}

}  // namespace
}  // namespace remora::http
