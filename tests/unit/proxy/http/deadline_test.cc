#include "proxy/http/deadline.h"

#include <gtest/gtest.h>

namespace remora::http {
namespace {

TEST(DeadlineTest, GrpcTimeoutUnits) {
  absl::Duration d;
  ASSERT_TRUE(ParseGrpcTimeout("2H", &d));
  EXPECT_EQ(d, absl::Hours(2));
  ASSERT_TRUE(ParseGrpcTimeout("3M", &d));
  EXPECT_EQ(d, absl::Minutes(3));
  ASSERT_TRUE(ParseGrpcTimeout("10S", &d));
  EXPECT_EQ(d, absl::Seconds(10));
  ASSERT_TRUE(ParseGrpcTimeout("250m", &d));
  EXPECT_EQ(d, absl::Milliseconds(250));
  ASSERT_TRUE(ParseGrpcTimeout("99999999u", &d));
  EXPECT_EQ(d, absl::Microseconds(99999999));
  ASSERT_TRUE(ParseGrpcTimeout("0n", &d));
  EXPECT_EQ(d, absl::ZeroDuration());
}

TEST(DeadlineTest, MalformedGrpcTimeoutsAreRejected) {
  absl::Duration d;
  for (absl::string_view bad : {"", "m", "5", "123456789m", "-5m", "+5m", "5x", "5 m", "1.5S"}) {
    EXPECT_FALSE(ParseGrpcTimeout(bad, &d)) << bad;
  }
}

TEST(DeadlineTest, GrpcTimeoutValueRoundsDownAndFitsEightDigits) {
  EXPECT_EQ(GrpcTimeoutValue(absl::Microseconds(1999)), "1m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Milliseconds(-5)), "0m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Milliseconds(99999999)), "99999999m");
  EXPECT_EQ(GrpcTimeoutValue(absl::Milliseconds(100000000)), "100000S");
  absl::Duration d;
  ASSERT_TRUE(ParseGrpcTimeout(GrpcTimeoutValue(absl::Hours(24 * 365 * 1000)), &d));
}

TEST(DeadlineTest, InboundBudgetByKind) {
  HeaderMap h;
  EXPECT_FALSE(InboundBudget(h, false).has_value());
  h.Add("x-remora-deadline-ms", "1500");
  EXPECT_EQ(InboundBudget(h, false), absl::Milliseconds(1500));
  EXPECT_EQ(InboundBudget(h, true), absl::Milliseconds(1500));  // gRPC without grpc-timeout
  h.Add("grpc-timeout", "200m");
  EXPECT_EQ(InboundBudget(h, true), absl::Milliseconds(200));  // gRPC: its own header first
  EXPECT_EQ(InboundBudget(h, false), absl::Milliseconds(1500));

  HeaderMap bad;
  bad.Add("x-remora-deadline-ms", "-1");
  EXPECT_FALSE(InboundBudget(bad, false).has_value());
  bad.Set("x-remora-deadline-ms", "1e3");
  EXPECT_FALSE(InboundBudget(bad, false).has_value());
  bad.Set("x-remora-deadline-ms", "0");
  EXPECT_EQ(InboundBudget(bad, false), absl::ZeroDuration());
}

TEST(DeadlineTest, OutboundBudgetRewritesTheHeaderOfTheKind) {
  HeaderMap h;
  h.Add("x-remora-deadline-ms", "1500");
  SetOutboundBudget(h, false, absl::Microseconds(1234999));
  EXPECT_EQ(h.Get("x-remora-deadline-ms"), "1234");
  EXPECT_EQ(h.Count("x-remora-deadline-ms"), 1u);

  HeaderMap g;
  g.Add("grpc-timeout", "1S");
  g.Add("x-remora-deadline-ms", "1500");
  SetOutboundBudget(g, true, absl::Milliseconds(750));
  EXPECT_EQ(g.Get("grpc-timeout"), "750m");
  EXPECT_FALSE(g.Has("x-remora-deadline-ms"));
}

}  // namespace
}  // namespace remora::http
