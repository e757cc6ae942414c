#include "proxy/upstream/load_balancer.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxy/server/snapshot.h"
#include "proxy/stats/metrics.h"
#include "proxy/upstream/outlier.h"

namespace remora::upstream {
namespace {

// A cluster runtime for one worker, built the way BuildSnapshot builds one.
struct Cluster {
  // Endpoints 10.0.0.1:8000, :8001, ... with these weights, or at these ports with weight 1.
  Cluster(config::LbPolicy policy, std::vector<uint32_t> weights,
          std::vector<uint16_t> ports = {}) {
    config.name = "c";
    config.lb_policy = policy;
    if (ports.empty()) {
      for (size_t i = 0; i < weights.size(); ++i) ports.push_back(static_cast<uint16_t>(8000 + i));
    }
    for (size_t i = 0; i < ports.size(); ++i) {
      config::Endpoint e;
      e.address = {"10.0.0.1", ports[i], false};
      e.weight = i < weights.size() ? weights[i] : 1;
      config.endpoints.push_back(e);
    }
    rt.config = &config;
    rt.state = registry.Cluster("c");
    rt.stats = stats::RegisterClusterStats(store, "c");
    for (const config::Endpoint& e : config.endpoints) {
      server::EndpointRuntime ep{};
      ep.address_text = e.address.ToString();
      ep.weight = e.weight;
      ep.state = registry.Endpoint("c", ep.address_text);
      rt.endpoints.push_back(std::move(ep));
    }
    rt.per_worker = std::make_unique<server::ClusterRuntime::PerWorker[]>(1);
    rt.per_worker[0].active = std::make_unique<int32_t[]>(ports.size());
    rt.worker_count = 1;
    rt.lb = LbTables::Build(config, "");
  }
  // Endpoint i is in zones[i]; the proxy in `local`.
  void SetZones(const std::vector<std::string>& zones, const std::string& local) {
    for (size_t i = 0; i < zones.size(); ++i) config.endpoints[i].zone = zones[i];
    rt.lb = LbTables::Build(config, local);
  }
  LbPick PickAt(absl::Time now, LbRequest req = {}) {
    return PickEndpoint(rt, 0, req, now, store.worker(0));
  }
  uint32_t Pick(LbRequest req = {}) { return PickAt(absl::UnixEpoch(), req).endpoint; }
  // An attempt to endpoint i ended (failed: with a 503).
  void Outcome(uint32_t i, bool failed, bool probe, absl::Time now) {
    RecordOutcome(rt, i, failed ? FailureClass(AttemptEnd::kResponse, 503) : 0, probe, now,
                  store.worker(0));
  }
  BreakerState State(uint32_t i) const { return rt.endpoints[i].state->breaker.state(); }
  int64_t Count(uint32_t slot) const { return store.Value(slot); }
  stats::Store store{1};
  EndpointStateRegistry registry;
  config::Cluster config;
  server::ClusterRuntime rt;
};

TEST(LoadBalancerTest, WeightedRoundRobinIsExactPerCycleAndInterleaved) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 2, 3});
  std::vector<int> count(3);
  uint32_t last = 99;
  int repeats = 0;
  for (int i = 0; i < 600; ++i) {
    uint32_t e = c.Pick();
    ++count[e];
    repeats += e == last;
    last = e;
  }
  EXPECT_EQ(count, (std::vector<int>{100, 200, 300}));
  EXPECT_LE(repeats, 100);  // smooth: the heavy endpoint's turns are spread, not bunched
  Cluster equal(config::LbPolicy::kRoundRobin, {5, 5});
  EXPECT_TRUE(equal.rt.lb.weighted.empty());
  EXPECT_NE(equal.Pick(), equal.Pick());
}

TEST(LoadBalancerTest, RandomFollowsTheWeights) {
  Cluster c(config::LbPolicy::kRandom, {1, 3});
  int heavy = 0;
  for (int i = 0; i < 40000; ++i) heavy += c.Pick() == 1;
  EXPECT_NEAR(heavy / 40000.0, 0.75, 0.02);
}

TEST(LoadBalancerTest, LeastRequestAvoidsBusyEndpointsPerUnitOfWeight) {
  Cluster c(config::LbPolicy::kLeastRequest, {1, 1, 1});
  c.rt.AddEndpointActive(0, 0, 10);
  for (int i = 0; i < 1000; ++i) EXPECT_NE(c.Pick(), 0u);
  // Weight-aware: 4 in flight on a weight-4 endpoint is lighter than 4 on a weight-1 one.
  Cluster w(config::LbPolicy::kLeastRequest, {1, 4});
  w.rt.AddEndpointActive(0, 0, 4);
  w.rt.AddEndpointActive(0, 1, 4);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(w.Pick(), 1u);
  // Idle endpoints share the load.
  Cluster idle(config::LbPolicy::kLeastRequest, {1, 1, 1, 1});
  std::vector<int> count(4);
  for (int i = 0; i < 4000; ++i) ++count[idle.Pick()];
  for (int n : count) EXPECT_NEAR(n, 1000, 150);
}

TEST(LoadBalancerTest, ARetryGoesToAnEndpointNotTried) {
  for (auto policy : {config::LbPolicy::kRoundRobin, config::LbPolicy::kRandom,
                      config::LbPolicy::kLeastRequest, config::LbPolicy::kRingHash}) {
    Cluster c(policy, {1, 1, 1});
    for (int i = 0; i < 200; ++i) {
      LbRequest req;
      req.tried = 0b011;
      req.has_hash = true;
      req.hash = HashKey(absl::StrCat("k", i));
      EXPECT_EQ(c.Pick(req), 2u) << config::LbPolicyName(policy);
    }
    LbRequest all;
    all.tried = 0b111;
    EXPECT_LT(c.Pick(all), 3u);  // all tried: any
  }
}

TEST(LoadBalancerTest, RingHashKeepsKeysAndMovesOnlyTheLeaversKeys) {
  Cluster four(config::LbPolicy::kRingHash, {1, 1, 1, 1});
  std::map<std::string, std::string> before;
  std::vector<int> count(4);
  for (int i = 0; i < 4000; ++i) {
    LbRequest req;
    req.has_hash = true;
    req.hash = HashKey(absl::StrCat("user-", i));
    uint32_t e = four.Pick(req);
    EXPECT_EQ(four.Pick(req), e);  // the same key, the same endpoint
    ++count[e];
    before[absl::StrCat("user-", i)] = four.rt.endpoints[e].address_text;
  }
  for (int n : count) EXPECT_NEAR(n, 1000, 250);
  // The endpoint on port 8001 leaves: the others keep their ring points (they depend on the
  // address alone), so only its keys move.
  Cluster three(config::LbPolicy::kRingHash, {}, {8000, 8003, 8002});  // listed in another order
  int moved = 0;
  for (const auto& [key, was] : before) {
    LbRequest req;
    req.has_hash = true;
    req.hash = HashKey(key);
    const std::string& now = three.rt.endpoints[three.Pick(req)].address_text;
    if (was != "10.0.0.1:8001") {
      EXPECT_EQ(now, was) << key;
    } else {
      ++moved;
    }
  }
  EXPECT_NEAR(moved / 4000.0, 0.25, 0.07);  // ~1/N of the keys, and only those
}

TEST(LoadBalancerTest, HashKeyIsStable) {
  // A fixed value (FNV-1a 64 then splitmix64's finaliser, checked against an independent
  // implementation): ring positions must not change across builds or restarts.
  EXPECT_EQ(HashKey("10.0.0.1:8000_0"), 0x542fc2512a2bd873ULL);
  EXPECT_NE(HashKey("a"), HashKey("b"));
}

// ---- breakers (breaker.h), through the pick and RecordOutcome as the data path uses them ----

config::CircuitBreaker Breaker5(uint32_t consecutive = 3) {
  config::CircuitBreaker b;
  b.enabled = true;
  b.consecutive_failures = consecutive;
  b.open_for = absl::Seconds(1);
  b.max_open_for = absl::Seconds(4);
  return b;
}

TEST(BreakerTest, ClosedOpenHalfOpenClosed) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1});
  c.config.circuit_breaker = Breaker5();
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  // Two failures, a success, two more: never three in a row.
  c.Outcome(0, true, false, t);
  c.Outcome(0, true, false, t);
  c.Outcome(0, false, false, t);
  c.Outcome(0, true, false, t);
  c.Outcome(0, true, false, t);
  EXPECT_EQ(c.State(0), BreakerState::kClosed);
  c.Outcome(0, true, false, t);  // the third in a row
  EXPECT_EQ(c.State(0), BreakerState::kOpen);
  EXPECT_EQ(c.Count(c.rt.stats.breaker_opened), 1);
  EXPECT_EQ(c.rt.state->breakers_open.load(), 1);
  // Open: every pick goes to the other endpoint.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(c.PickAt(t + absl::Milliseconds(999)).endpoint, 1u);
  // open_for is up: the next pick that lands on it is its probe, one at a time.
  t += absl::Seconds(1);
  LbPick probe;
  for (int i = 0; i < 4 && !probe.probe; ++i) probe = c.PickAt(t);
  ASSERT_TRUE(probe.probe);
  EXPECT_EQ(probe.endpoint, 0u);
  EXPECT_EQ(c.State(0), BreakerState::kHalfOpen);
  EXPECT_EQ(c.Count(c.rt.stats.breaker_half_opened), 1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.PickAt(t).endpoint, 1u);  // the probe slot is taken
  // A late failure of a request that is not the probe changes nothing.
  c.Outcome(0, true, false, t);
  EXPECT_EQ(c.State(0), BreakerState::kHalfOpen);
  c.Outcome(0, false, /*probe=*/true, t);
  EXPECT_EQ(c.State(0), BreakerState::kClosed);
  EXPECT_EQ(c.Count(c.rt.stats.breaker_closed), 1);
  EXPECT_EQ(c.rt.state->breakers_open.load(), 0);
}

TEST(BreakerTest, AFailedProbeReopensForLongerUpToTheCap) {
  Cluster c(config::LbPolicy::kRoundRobin, {1});
  c.config.circuit_breaker = Breaker5(1);
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  c.Outcome(0, true, false, t);
  // Open for 1 s, then 2, 4, and 4 (max_open_for): each probe fails.
  for (absl::Duration d :
       {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4), absl::Seconds(4)}) {
    EXPECT_EQ(c.State(0), BreakerState::kOpen);
    EXPECT_TRUE(c.PickAt(t + d - absl::Milliseconds(1)).circuit_open) << d;
    t += d;
    LbPick p = c.PickAt(t);
    ASSERT_TRUE(p.probe) << d;
    c.Outcome(0, true, true, t);
  }
  // A probe succeeds; after max_open_for closed, the next opening is 1 s again.
  t += absl::Seconds(4);
  ASSERT_TRUE(c.PickAt(t).probe);
  c.Outcome(0, false, true, t);
  EXPECT_EQ(c.State(0), BreakerState::kClosed);
  t += absl::Seconds(4);
  c.Outcome(0, true, false, t);
  EXPECT_TRUE(c.PickAt(t + absl::Milliseconds(999)).circuit_open);
  EXPECT_TRUE(c.PickAt(t + absl::Seconds(1)).probe);
}

TEST(BreakerTest, FailureRatioNeedsTheMinimumRequests) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1});
  c.config.circuit_breaker = Breaker5(0);
  c.config.circuit_breaker.failure_ratio = 0.5;
  c.config.circuit_breaker.min_requests = 10;
  c.config.circuit_breaker.window = absl::Seconds(10);
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  // 4 of 8 failed: half, but under the minimum.
  for (int i = 0; i < 8; ++i) c.Outcome(0, i % 2 == 0, false, t);
  EXPECT_EQ(c.State(0), BreakerState::kClosed);
  // The window restarts: the old requests no longer count.
  t += absl::Seconds(11);
  for (int i = 0; i < 9; ++i) c.Outcome(0, i < 4, false, t);
  EXPECT_EQ(c.State(0), BreakerState::kClosed);  // 4 of 9
  c.Outcome(0, true, false, t);                  // 5 of 10
  EXPECT_EQ(c.State(0), BreakerState::kOpen);
}

TEST(BreakerTest, EveryEndpointOpenIsTheClusterBreaker) {
  Cluster c(config::LbPolicy::kLeastRequest, {1, 1, 1});
  c.config.circuit_breaker = Breaker5(1);
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  for (uint32_t i = 0; i < 3; ++i) c.Outcome(i, true, false, t);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(c.PickAt(t).circuit_open);
  // Once open_for is up, probes go through, one per endpoint, then nothing until they end.
  t += absl::Seconds(1);
  std::map<uint32_t, int> probes;
  for (int i = 0; i < 3; ++i) {
    LbPick p = c.PickAt(t);
    ASSERT_TRUE(p.probe);
    ++probes[p.endpoint];
  }
  EXPECT_EQ(probes.size(), 3u);
  EXPECT_TRUE(c.PickAt(t).circuit_open);
}

TEST(BreakerTest, EjectionCapKeepsTheRestClosed) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1, 1, 1});
  c.config.circuit_breaker = Breaker5(1);
  c.config.circuit_breaker.max_ejection_percent = 50;
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  for (uint32_t i = 0; i < 4; ++i) c.Outcome(i, true, false, t);
  int open = 0;
  for (uint32_t i = 0; i < 4; ++i) open += c.State(i) == BreakerState::kOpen;
  EXPECT_EQ(open, 2);
  EXPECT_EQ(c.Count(c.rt.stats.ejections_capped), 2);
  EXPECT_EQ(c.rt.state->breakers_open.load(), 2);
}

TEST(BreakerTest, PanicUsesEveryEndpoint) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1, 1, 1});
  c.config.circuit_breaker = Breaker5(1);
  c.config.panic_threshold_percent = 50;
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  c.Outcome(0, true, false, t);
  c.Outcome(1, true, false, t);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 40; ++i) ++seen[c.PickAt(t).endpoint];
  EXPECT_EQ(seen.size(), 2u);  // 2 of 4 closed: not below 50%, the open ones are skipped
  EXPECT_EQ(c.Count(c.rt.stats.lb_panic), 0);
  c.Outcome(2, true, false, t);  // 1 of 4 closed: panic
  seen.clear();
  for (int i = 0; i < 40; ++i) ++seen[c.PickAt(t).endpoint];
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(c.Count(c.rt.stats.lb_panic), 40);
}

TEST(LoadBalancerTest, UnhealthyEndpointsAreSkippedUntilTooFewAreLeft) {
  Cluster c(config::LbPolicy::kLeastRequest, {1, 1, 1, 1});
  c.config.panic_threshold_percent = 50;
  ASSERT_TRUE(c.rt.endpoints[1].state->SetHealthy(false));
  EXPECT_FALSE(c.rt.endpoints[1].state->SetHealthy(false));  // already
  EXPECT_EQ(c.rt.state->unhealthy_endpoints.load(), 1);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 200; ++i) ++seen[c.Pick()];
  EXPECT_EQ(seen.count(1), 0u);
  EXPECT_EQ(seen.size(), 3u);
  // A retry that tried every healthy endpoint goes to a tried healthy one, not the unhealthy.
  LbRequest retry;
  retry.tried = 0b1101;
  for (int i = 0; i < 20; ++i) EXPECT_NE(c.Pick(retry), 1u);
  // Two of four healthy is not below 50%; one of four is: panic, all four used.
  c.rt.endpoints[2].state->SetHealthy(false);
  seen.clear();
  for (int i = 0; i < 200; ++i) ++seen[c.Pick()];
  EXPECT_EQ(seen.size(), 2u);
  c.rt.endpoints[3].state->SetHealthy(false);
  seen.clear();
  for (int i = 0; i < 200; ++i) ++seen[c.Pick()];
  EXPECT_EQ(seen.size(), 4u);
  // Back in rotation, and counted out.
  for (uint32_t i = 1; i < 4; ++i) c.rt.endpoints[i].state->SetHealthy(true);
  EXPECT_EQ(c.rt.state->unhealthy_endpoints.load(), 0);
}

TEST(LoadBalancerTest, TheLocalZoneIsPreferredAndSpillsAsItLosesEndpoints) {
  for (config::LbPolicy policy : {config::LbPolicy::kRoundRobin, config::LbPolicy::kRandom,
                                  config::LbPolicy::kLeastRequest}) {
    SCOPED_TRACE(config::LbPolicyName(policy));
    Cluster c(policy, {1, 1, 1, 1, 1});
    c.config.panic_threshold_percent = 0;
    c.SetZones({"b", "a", "b", "a", "b"}, "a");
    std::map<uint32_t, int> seen;
    for (int i = 0; i < 400; ++i) ++seen[c.Pick()];
    EXPECT_EQ(seen.size(), 2u);
    EXPECT_GT(seen[1], 150);  // both local endpoints, nothing else
    EXPECT_GT(seen[3], 150);
    // A retry that tried both goes to another zone.
    LbRequest retry;
    retry.tried = 0b01010;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(c.Pick(retry) % 2, 0u);
    // One of the two local endpoints out: 1.4 x 1/2 = 70% stay in zone, all on the survivor;
    // the rest spread over the cluster's available endpoints.
    c.rt.endpoints[1].state->SetHealthy(false);
    seen.clear();
    for (int i = 0; i < 4000; ++i) ++seen[c.Pick()];
    EXPECT_EQ(seen.count(1), 0u);
    EXPECT_NEAR(seen[3] / 4000.0, 0.7 + 0.3 / 4, 0.04);
    c.rt.endpoints[1].state->SetHealthy(true);
  }
  // Without the proxy's zone, or with every endpoint in it, there is no preference.
  Cluster all(config::LbPolicy::kRoundRobin, {1, 1});
  all.SetZones({"a", "a"}, "a");
  EXPECT_TRUE(all.rt.lb.local.empty());
  all.SetZones({"a", "b"}, "");
  EXPECT_TRUE(all.rt.lb.local.empty());
}

TEST(LoadBalancerTest, NoEndpointInRotationAndNoPanicPicksNothing) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1});
  c.config.panic_threshold_percent = 0;
  c.rt.endpoints[0].state->SetHealthy(false);
  c.rt.endpoints[1].state->SetHealthy(false);
  LbPick p = c.PickAt(absl::UnixEpoch());
  EXPECT_TRUE(p.none_available);
  EXPECT_FALSE(p.circuit_open);
  c.rt.endpoints[0].state->SetHealthy(true);
  c.rt.endpoints[1].state->SetHealthy(true);
}

TEST(BreakerTest, ABreakerLeftOpenByAnEarlierConfigNoLongerCounts) {
  Cluster c(config::LbPolicy::kRoundRobin, {1, 1, 1});
  c.config.circuit_breaker = Breaker5(1);
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  c.Outcome(0, true, false, t);
  ASSERT_EQ(c.State(0), BreakerState::kOpen);
  // The breaker is removed from the config; a health check takes endpoint 2 out, so the
  // careful pick runs: endpoint 0 is in rotation again.
  c.config.circuit_breaker.enabled = false;
  c.rt.endpoints[2].state->SetHealthy(false);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 20; ++i) ++seen[c.PickAt(t).endpoint];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[0], 0);
  c.rt.endpoints[2].state->SetHealthy(true);
}

TEST(BreakerTest, AnEndpointLeavingGivesBackItsEjectionSlot) {
  auto cluster = std::make_shared<ClusterState>("c");
  config::CircuitBreaker cfg = Breaker5(1);
  {
    EndpointState ep("10.0.0.1:80", cluster);
    ep.breaker.Record(cfg, *cluster, 2, true, false, absl::UnixEpoch());
    EXPECT_EQ(cluster->breakers_open.load(), 1);
  }
  EXPECT_EQ(cluster->breakers_open.load(), 0);
}

}  // namespace
}  // namespace remora::upstream
