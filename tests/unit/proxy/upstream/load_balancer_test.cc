#include "proxy/upstream/load_balancer.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxy/server/snapshot.h"

namespace remora::upstream {
namespace {

// A cluster runtime for one worker, built the way BuildSnapshot builds one.
struct Cluster {
  // Endpoints 10.0.0.1:8000, :8001, ... with these weights, or at these ports with weight 1.
  Cluster(config::LbPolicy policy, std::vector<uint32_t> weights,
          std::vector<uint16_t> ports = {}) {
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
    for (const config::Endpoint& e : config.endpoints) {
      server::EndpointRuntime ep{};
      ep.address_text = e.address.ToString();
      ep.weight = e.weight;
      rt.endpoints.push_back(std::move(ep));
    }
    rt.per_worker = std::make_unique<server::ClusterRuntime::PerWorker[]>(1);
    rt.per_worker[0].active = std::make_unique<int32_t[]>(ports.size());
    rt.worker_count = 1;
    rt.lb = LbTables::Build(config);
  }
  uint32_t Pick(LbRequest req = {}) { return PickEndpoint(rt, 0, req); }
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

}  // namespace
}  // namespace remora::upstream
