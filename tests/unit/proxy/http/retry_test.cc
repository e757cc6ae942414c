// RetryState and RetryBudget on the simulated dispatcher: every decision and every backoff is
// checked against the policy without sleeping.
#include "proxy/http/retry.h"

#include <vector>

#include "gtest/gtest.h"
#include "proxy/event/sim_dispatcher.h"

namespace remora::http {
namespace {

using Kind = AttemptFailure::Kind;
using Decision = RetryState::Decision;

constexpr int64_t kFewActive = 1;

struct Fixture {
  config::RetryPolicy policy;
  config::Cluster cluster;
  upstream::RetryBudget budget;
  event::SimDispatcher dispatcher;
};

AttemptFailure Fail(Kind kind) { return {kind, 0, -1, std::nullopt}; }

AttemptFailure Response(int status, int grpc_status = -1) {
  return {Kind::kResponse, status, grpc_status, std::nullopt};
}

TEST(RetryStateTest, DefaultConditionsAndTheAttemptLimit) {
  Fixture f;  // defaults: 3 attempts; connect-failure, refused-stream, reset, gateway-error
  RetryState s(f.policy, f.cluster, f.budget, /*idempotent=*/true, f.dispatcher);
  EXPECT_TRUE(s.Covers(Fail(Kind::kConnectFailure)));
  EXPECT_TRUE(s.Covers(Fail(Kind::kRefusedStream)));
  EXPECT_TRUE(s.Covers(Fail(Kind::kReset)));
  EXPECT_TRUE(s.Covers(Fail(Kind::kPerTryTimeout)));
  EXPECT_TRUE(s.Covers(Response(502)));
  EXPECT_TRUE(s.Covers(Response(503)));
  EXPECT_TRUE(s.Covers(Response(504)));
  EXPECT_FALSE(s.Covers(Response(500)));
  EXPECT_FALSE(s.Covers(Response(429)));
  EXPECT_FALSE(s.Covers(Response(200, 14)));

  s.OnAttempt();
  EXPECT_EQ(s.Decide(Response(503), kFewActive), Decision::kRetry);
  s.OnAttempt();
  EXPECT_EQ(s.Decide(Fail(Kind::kReset), kFewActive), Decision::kRetry);
  s.OnAttempt();
  EXPECT_EQ(s.attempts(), 3u);
  EXPECT_EQ(s.Decide(Response(503), kFewActive), Decision::kNo);  // three attempts in all
  EXPECT_EQ(f.budget.in_flight(), 0);                             // the last retry's slot went back
}

TEST(RetryStateTest, NamedStatusesAndGrpcStatuses) {
  Fixture f;
  f.policy.retry_on = config::kRetryOn5xx;
  f.policy.status_codes = {409};
  f.policy.grpc_statuses = 1u << 14;  // unavailable
  RetryState s(f.policy, f.cluster, f.budget, true, f.dispatcher);
  EXPECT_TRUE(s.Covers(Response(500)));
  EXPECT_TRUE(s.Covers(Response(599)));
  EXPECT_TRUE(s.Covers(Response(409)));
  EXPECT_FALSE(s.Covers(Response(404)));
  EXPECT_TRUE(s.Covers(Response(200, 14)));
  EXPECT_FALSE(s.Covers(Response(200, 13)));
  EXPECT_FALSE(s.Covers(Response(200, 0)));
  // 5xx covers the no-response failures too.
  EXPECT_TRUE(s.Covers(Fail(Kind::kConnectFailure)));
  EXPECT_TRUE(s.Covers(Fail(Kind::kPerTryTimeout)));

  f.policy.retry_on = config::kRetryOnConnectFailure;
  f.policy.status_codes.clear();
  f.policy.grpc_statuses = 0;
  EXPECT_TRUE(s.Covers(Fail(Kind::kConnectFailure)));
  EXPECT_FALSE(s.Covers(Fail(Kind::kRefusedStream)));
  EXPECT_FALSE(s.Covers(Fail(Kind::kReset)));
  EXPECT_FALSE(s.Covers(Response(503)));
}

TEST(RetryStateTest, NonIdempotentRequestsAreRetriedOnlyWhenNothingWasProcessed) {
  Fixture f;
  f.policy.attempts = 10;
  RetryState s(f.policy, f.cluster, f.budget, /*idempotent=*/false, f.dispatcher);
  s.OnAttempt();
  EXPECT_EQ(s.Decide(Response(503), kFewActive), Decision::kNo);
  EXPECT_EQ(s.Decide(Fail(Kind::kReset), kFewActive), Decision::kNo);
  EXPECT_EQ(s.Decide(Fail(Kind::kPerTryTimeout), kFewActive), Decision::kNo);
  EXPECT_EQ(s.Decide(Fail(Kind::kConnectFailure), kFewActive), Decision::kRetry);
  s.OnAttempt();
  EXPECT_EQ(s.Decide(Fail(Kind::kRefusedStream), kFewActive), Decision::kRetry);
}

TEST(RetryStateTest, FullJitterBackoffStaysWithinItsCeiling) {
  Fixture f;
  f.policy.attempts = 10;
  f.policy.backoff_base = absl::Milliseconds(10);
  f.policy.backoff_max = absl::Milliseconds(100);
  f.cluster.retry_budget_min_concurrency = 1;
  absl::Duration longest[9] = {};
  absl::Duration shortest[9];
  for (auto& d : shortest) d = absl::InfiniteDuration();
  // 30 requests of 9 retries each: 270 backoffs, every one checked against min(max, base * 2^n).
  for (int request = 0; request < 30; ++request) {
    RetryState s(f.policy, f.cluster, f.budget, true, f.dispatcher);
    s.OnAttempt();
    for (int n = 0; n < 9; ++n) {
      ASSERT_EQ(s.Decide(Fail(Kind::kReset), kFewActive), Decision::kRetry);
      bool ran = false;
      absl::Time start = f.dispatcher.Now();
      absl::Duration wait = s.Schedule([&] {
        ran = true;
        s.OnAttempt();
      });
      absl::Duration ceiling = std::min(absl::Milliseconds(100), absl::Milliseconds(10) * (1 << n));
      EXPECT_GE(wait, absl::ZeroDuration());
      EXPECT_LE(wait, ceiling) << "retry " << n;
      longest[n] = std::max(longest[n], wait);
      shortest[n] = std::min(shortest[n], wait);
      // The retry runs when the wait is over, not before.
      if (wait > absl::ZeroDuration()) {
        f.dispatcher.AdvanceTime(wait - absl::Nanoseconds(1));
        EXPECT_FALSE(ran);
      }
      f.dispatcher.AdvanceTime(absl::Milliseconds(1));
      EXPECT_TRUE(ran);
      EXPECT_GE(f.dispatcher.Now() - start, wait);
    }
    EXPECT_EQ(s.Decide(Fail(Kind::kReset), kFewActive), Decision::kNo);
  }
  // Jitter spreads the waits: over 30 draws each ceiling is nearly reached and nearly avoided.
  for (int n = 0; n < 9; ++n) {
    absl::Duration ceiling = std::min(absl::Milliseconds(100), absl::Milliseconds(10) * (1 << n));
    EXPECT_GT(longest[n], ceiling / 2) << n;
    EXPECT_LT(shortest[n], ceiling / 2) << n;
  }
  EXPECT_EQ(f.budget.in_flight(), 0);
}

TEST(RetryStateTest, RetryAfterIsHonouredUpToTheCap) {
  Fixture f;
  f.policy.backoff_max = absl::Seconds(2);
  RetryState s(f.policy, f.cluster, f.budget, true, f.dispatcher);
  s.OnAttempt();
  AttemptFailure busy = Response(503);
  busy.retry_after = absl::Seconds(1);
  ASSERT_EQ(s.Decide(busy, kFewActive), Decision::kRetry);
  bool ran = false;
  EXPECT_EQ(s.Schedule([&] { ran = true; }), absl::Seconds(1));
  f.dispatcher.AdvanceTime(absl::Milliseconds(999));
  EXPECT_FALSE(ran);
  f.dispatcher.AdvanceTime(absl::Milliseconds(1));
  EXPECT_TRUE(ran);
  s.OnAttempt();
  // Longer than the cap: the response goes back to the client rather than a retry too early.
  busy.retry_after = absl::Seconds(3);
  EXPECT_EQ(s.Decide(busy, kFewActive), Decision::kNo);
}

TEST(ParseRetryAfterTest, SecondsAndHttpDates) {
  absl::Time now = absl::FromUnixSeconds(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(ParseRetryAfter("120", now), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:39 GMT", now), absl::Seconds(2));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("-5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("1.5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("99999999999", now), absl::InfiniteDuration());
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
}

TEST(RetryStateTest, CancelStopsTheBackoffAndReturnsTheSlot) {
  Fixture f;
  RetryState s(f.policy, f.cluster, f.budget, true, f.dispatcher);
  s.OnAttempt();
  ASSERT_EQ(s.Decide(Fail(Kind::kReset), kFewActive), Decision::kRetry);
  EXPECT_EQ(f.budget.in_flight(), 1);
  bool ran = false;
  f.policy.backoff_base = f.policy.backoff_max = absl::Seconds(1);
  // The wait is uniform in [0, 1 s]: the retry cannot have run before time moves.
  s.Schedule([&] { ran = true; });
  EXPECT_TRUE(s.backing_off());
  s.Cancel();
  EXPECT_FALSE(s.backing_off());
  EXPECT_EQ(f.budget.in_flight(), 0);
  f.dispatcher.AdvanceTime(absl::Seconds(1));
  EXPECT_FALSE(ran);
}

TEST(RetryStateTest, TheBudgetBoundsRetriesInFlightAcrossRequests) {
  Fixture f;
  f.cluster.retry_budget_ratio = 0.2;
  f.cluster.retry_budget_min_concurrency = 3;
  // 50 requests in flight, all failing at once: max(3, 0.2 * 50) = 10 may retry.
  std::vector<std::unique_ptr<RetryState>> states;
  int retries = 0, overflow = 0;
  for (int i = 0; i < 50; ++i) {
    states.push_back(
        std::make_unique<RetryState>(f.policy, f.cluster, f.budget, true, f.dispatcher));
    states.back()->OnAttempt();
    Decision d = states.back()->Decide(Response(503), /*active_requests=*/50);
    retries += d == Decision::kRetry;
    overflow += d == Decision::kOverflow;
  }
  EXPECT_EQ(retries, 10);
  EXPECT_EQ(overflow, 40);
  EXPECT_EQ(f.budget.in_flight(), 10);
  // With few requests in flight the minimum applies.
  upstream::RetryBudget other;
  EXPECT_TRUE(other.TryAcquire(0.2, 3, 0, 1));
  EXPECT_TRUE(other.TryAcquire(0.2, 3, 0, 1));
  EXPECT_TRUE(other.TryAcquire(0.2, 3, 0, 1));
  EXPECT_FALSE(other.TryAcquire(0.2, 3, 0, 1));
  // max_retries caps the budget, however many requests are in flight.
  upstream::RetryBudget capped;
  EXPECT_TRUE(capped.TryAcquire(0.2, 3, 2, 1000));
  EXPECT_TRUE(capped.TryAcquire(0.2, 3, 2, 1000));
  EXPECT_FALSE(capped.TryAcquire(0.2, 3, 2, 1000));
  // Requests ending give their slots back.
  states.clear();
  EXPECT_EQ(f.budget.in_flight(), 0);
}

TEST(RetryStateTest, ARetryHoldsItsSlotUntilItsAttemptEnds) {
  Fixture f;
  f.cluster.retry_budget_min_concurrency = 1;
  f.cluster.retry_budget_ratio = 0;
  RetryState a(f.policy, f.cluster, f.budget, true, f.dispatcher);
  RetryState b(f.policy, f.cluster, f.budget, true, f.dispatcher);
  a.OnAttempt();
  b.OnAttempt();
  ASSERT_EQ(a.Decide(Fail(Kind::kReset), kFewActive), Decision::kRetry);
  EXPECT_EQ(b.Decide(Fail(Kind::kReset), kFewActive), Decision::kOverflow);
  a.OnAttempt();  // a's retry is running: its slot is still taken
  EXPECT_EQ(b.Decide(Fail(Kind::kReset), kFewActive), Decision::kOverflow);
  // a's retry fails for good: the slot is free for b.
  EXPECT_EQ(a.Decide(Response(404), kFewActive), Decision::kNo);
  EXPECT_EQ(b.Decide(Fail(Kind::kReset), kFewActive), Decision::kRetry);
}

}  // namespace
}  // namespace remora::http
