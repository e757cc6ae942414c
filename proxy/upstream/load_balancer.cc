#include "proxy/upstream/load_balancer.h"

#include <algorithm>
#include <numeric>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "proxy/server/snapshot.h"
#include "proxy/upstream/outlier.h"

namespace remora::upstream {

namespace {

constexpr size_t kMaxWeightedCycle = 64 * 1024;
constexpr size_t kMaxRing = 64 * 1024;
constexpr size_t kRingPointsPerEndpoint = 160;

uint64_t Mix(uint64_t z) {  // splitmix64's finaliser: spreads FNV's low-entropy high bits
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

absl::InsecureBitGen& Gen() {
  thread_local absl::InsecureBitGen gen;
  return gen;
}

bool Avoided(uint64_t avoid, size_t i) { return i < 64 && (avoid >> i) & 1; }

// The first endpoint from `i` on (cyclically) not avoided; `i` itself if all are.
uint32_t NotAvoided(uint64_t avoid, size_t i, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    size_t j = (i + k) % n;
    if (!Avoided(avoid, j)) return static_cast<uint32_t>(j);
  }
  return static_cast<uint32_t>(i);
}

// The policy's choice, away from the endpoints in `avoid` (bit i: endpoint i) while any is left;
// `local`: among the local zone's endpoints only (an avoided pick is returned as it is).
uint32_t ByPolicy(const server::ClusterRuntime& cluster, int worker, const LbRequest& req,
                  uint64_t avoid, bool local);

}  // namespace

uint64_t HashKey(absl::string_view key) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return Mix(h);
}

namespace {

// The smooth weighted round-robin cycle over `members` (endpoint indices): each endpoint
// weight/gcd times (scaled down past kMaxWeightedCycle entries), interleaved. Empty when their
// weights are all equal (plain rotation does then).
std::vector<uint32_t> WeightedCycle(const config::Cluster& c,
                                    const std::vector<uint32_t>& members) {
  const size_t n = members.size();
  std::vector<uint64_t> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = c.endpoints[members[i]].weight;
  if (std::all_of(w.begin(), w.end(), [&](uint64_t x) { return x == w[0]; })) return {};
  uint64_t g = 0;
  for (uint64_t x : w) g = std::gcd(g, x);
  uint64_t total = 0;
  for (uint64_t& x : w) total += (x /= g);
  if (total > kMaxWeightedCycle) {
    for (uint64_t& x : w) x = std::max<uint64_t>(1, x * kMaxWeightedCycle / total);
  }
  // Each step: everyone gains its weight, the richest is chosen and pays the total, so a heavy
  // endpoint's turns are spread through the cycle.
  std::vector<int64_t> current(n, 0);
  int64_t sum = 0;
  for (uint64_t x : w) sum += static_cast<int64_t>(x);
  std::vector<uint32_t> cycle;
  cycle.reserve(static_cast<size_t>(sum));
  for (int64_t step = 0; step < sum; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < n; ++i) {
      current[i] += static_cast<int64_t>(w[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= sum;
    cycle.push_back(members[best]);
  }
  return cycle;
}

}  // namespace

LbTables LbTables::Build(const config::Cluster& c, const std::string& local_zone) {
  LbTables t;
  size_t n = c.endpoints.size();
  std::vector<uint32_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = static_cast<uint32_t>(i);
  t.weighted = WeightedCycle(c, all);
  if (!local_zone.empty() && c.lb_policy != config::LbPolicy::kRingHash) {
    for (uint32_t i = 0; i < n; ++i) {
      if (c.endpoints[i].zone == local_zone) t.local.push_back(i);
    }
    // Only a mix is a preference: all local or none is the whole cluster.
    if (t.local.size() == n) t.local.clear();
    t.local_weighted = WeightedCycle(c, t.local);
  }
  if (c.lb_policy == config::LbPolicy::kRingHash) {
    // An endpoint's points depend on its own address and weight only (not on the others), so
    // one leaving or joining moves only the keys it takes or gives; the ring is scaled down
    // only past kMaxRing points in all.
    uint64_t total = 0;
    for (const config::Endpoint& e : c.endpoints) total += e.weight * kRingPointsPerEndpoint;
    for (size_t i = 0; i < n; ++i) {
      const config::Endpoint& e = c.endpoints[i];
      uint64_t points = e.weight * kRingPointsPerEndpoint;
      if (total > kMaxRing) points = std::max<uint64_t>(1, points * kMaxRing / total);
      // Positions depend on the address alone, so an endpoint keeps them whatever else changes.
      std::string base = e.address.ToString();
      for (size_t k = 0; k < points; ++k) {
        t.ring.push_back({HashKey(absl::StrCat(base, "_", k)), static_cast<uint32_t>(i)});
      }
    }
    std::sort(t.ring.begin(), t.ring.end(),
              [](const Point& a, const Point& b) { return a.hash < b.hash; });
  }
  return t;
}

namespace {

uint32_t ByPolicy(const server::ClusterRuntime& cluster, int worker, const LbRequest& req,
                  uint64_t avoid, bool local) {
  const server::ClusterRuntime::PerWorker& pw = cluster.per_worker[static_cast<size_t>(worker)];
  // The members picked among: every endpoint, or the local zone's (then the caller handles an
  // avoided pick).
  const std::vector<uint32_t>* ids = local ? &cluster.lb.local : nullptr;
  const size_t n = local ? ids->size() : cluster.endpoints.size();
  const std::vector<uint32_t>& weighted = local ? cluster.lb.local_weighted : cluster.lb.weighted;
  uint64_t& rr = local ? pw.rr_local : pw.rr_next;
  auto at = [&](size_t k) { return local ? (*ids)[k] : static_cast<uint32_t>(k); };
  if (n == 1) return at(0);
  uint32_t i = 0;
  switch (cluster.config->lb_policy) {
    case config::LbPolicy::kRoundRobin:
      i = weighted.empty() ? at(rr++ % n) : weighted[rr++ % weighted.size()];
      break;
    case config::LbPolicy::kRandom:
      i = weighted.empty() ? at(absl::Uniform<size_t>(Gen(), 0, n))
                           : weighted[absl::Uniform<size_t>(Gen(), 0, weighted.size())];
      break;
    case config::LbPolicy::kLeastRequest: {
      size_t ka = absl::Uniform<size_t>(Gen(), 0, n);
      size_t kb = absl::Uniform<size_t>(Gen(), 0, n - 1);
      if (kb >= ka) ++kb;  // two different endpoints
      uint32_t a = at(ka), b = at(kb);
      // Fewer in flight per unit of weight: active_a / w_a < active_b / w_b, in integers.
      uint64_t la = static_cast<uint64_t>(pw.active[a]) * cluster.endpoints[b].weight;
      uint64_t lb = static_cast<uint64_t>(pw.active[b]) * cluster.endpoints[a].weight;
      i = lb < la ? b : a;
      if (Avoided(avoid, i)) i = lb < la ? a : b;  // the other of the two, if this one was tried
      break;
    }
    case config::LbPolicy::kRingHash: {  // never local: a key's endpoint does not follow zones
      if (!req.has_hash) {
        i = absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n));
        break;
      }
      const auto& ring = cluster.lb.ring;
      auto it = std::lower_bound(ring.begin(), ring.end(), req.hash,
                                 [](const LbTables::Point& p, uint64_t h) { return p.hash < h; });
      size_t pos = it == ring.end() ? 0 : static_cast<size_t>(it - ring.begin());
      // Clockwise to the first endpoint not tried yet (all tried: the key's own).
      for (size_t k = 0; k < ring.size(); ++k) {
        uint32_t e = ring[(pos + k) % ring.size()].endpoint;
        if (!Avoided(avoid, e)) return e;
      }
      return ring[pos].endpoint;
    }
  }
  if (local || !Avoided(avoid, i)) return i;
  return NotAvoided(avoid, (i + 1) % n, n);
}

// An endpoint's breaker lets traffic through. A breaker left open by a config that had one,
// after a reload that removed it, no longer counts (its state is kept, but nothing moves it).
bool BreakerClosed(const server::ClusterRuntime& cluster, uint32_t i) {
  return !cluster.config->circuit_breaker.enabled ||
         cluster.endpoints[i].state->breaker.state() == BreakerState::kClosed;
}

bool Healthy(const server::ClusterRuntime& cluster, uint32_t i) {
  return cluster.endpoints[i].state->healthy.load(std::memory_order_relaxed);
}

// What endpoint i's breaker says to a request now (admitted without one). An open breaker whose
// time is up turns half-open here; the transition is reported.
Breaker::Admission Admit(const server::ClusterRuntime& cluster, uint32_t i, absl::Time now,
                         stats::Writer& stats) {
  const config::CircuitBreaker& cfg = cluster.config->circuit_breaker;
  if (!cfg.enabled) return Breaker::Admission::kAdmitted;
  BreakerTransition t;
  Breaker::Admission a = cluster.endpoints[i].state->breaker.Admit(cfg, now, &t);
  if (t != BreakerTransition::kNone) ReportTransition(cluster, i, t, now, stats);
  return a;
}

// In rotation for this request: healthy, and admitted by its breaker.
Breaker::Admission Usable(const server::ClusterRuntime& cluster, uint32_t i, absl::Time now,
                          stats::Writer& stats) {
  return Healthy(cluster, i) ? Admit(cluster, i, now, stats) : Breaker::Admission::kRefused;
}

LbPick Picked(uint32_t i, Breaker::Admission a) {
  return {i, a == Breaker::Admission::kProbe, false};
}

// Some endpoints are out (breaker open, or failing health checks): pick among the rest.
LbPick PickAvailable(const server::ClusterRuntime& cluster, int worker, const LbRequest& req,
                     absl::Time now, stats::Writer& stats) {
  const size_t n = cluster.endpoints.size();
  auto admit = [&](uint32_t i) { return Admit(cluster, i, now, stats); };
  auto usable = [&](uint32_t i) { return Usable(cluster, i, now, stats); };
  size_t closed = 0, available = 0;
  for (uint32_t i = 0; i < n; ++i) {
    bool c = BreakerClosed(cluster, i);
    closed += c;
    available += c && Healthy(cluster, i);
  }
  if (closed == 0) {
    // The cluster breaker: only a probe goes through, to an endpoint whose open time is up.
    uint32_t start = absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n));
    for (size_t k = 0; k < n; ++k) {
      uint32_t i = static_cast<uint32_t>((start + k) % n);
      if (admit(i) == Breaker::Admission::kProbe) return Picked(i, Breaker::Admission::kProbe);
    }
    return {0, false, true};
  }
  if (available * 100 < static_cast<size_t>(cluster.config->panic_threshold_percent) * n) {
    // Panic: too few left to carry the load; every endpoint takes its share (an open one due
    // for a probe still gets its probe).
    stats.Add(cluster.stats.lb_panic);
    uint32_t i = ByPolicy(cluster, worker, req, req.tried, false);
    return Picked(i, admit(i));
  }
  // Endpoints out of rotation are avoided like tried ones, but harder: a tried endpoint is
  // taken again when nothing else is left, a refused one is not.
  uint64_t refused = 0;
  for (size_t k = 0; k < n && k < 64; ++k) {
    uint32_t i = ByPolicy(cluster, worker, req, req.tried | refused, false);
    if (Avoided(refused, i)) break;  // the untried ones are all refused
    Breaker::Admission a = usable(i);
    if (a != Breaker::Admission::kRefused) return Picked(i, a);
    if (i >= 64) break;
    refused |= uint64_t{1} << i;
  }
  // A tried endpoint, or one past the first 64: the first usable from a random start.
  uint32_t start = absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n));
  for (size_t k = 0; k < n; ++k) {
    uint32_t i = static_cast<uint32_t>((start + k) % n);
    if (Avoided(refused, i)) continue;
    Breaker::Admission a = usable(i);
    if (a != Breaker::Admission::kRefused) return Picked(i, a);
  }
  // Every endpoint out of rotation and no panic (panic_threshold_percent 0), or the breakers
  // opened while we looked: nowhere to send it.
  LbPick none;
  none.none_available = true;
  return none;
}

// Whether this request stays in the local zone: always while all of the zone's endpoints are
// in rotation; else with probability min(1, 1.4 x the share of them that are), so a zone losing
// endpoints sheds load to the others gradually rather than overloading its survivors (the
// factor lets a zone lose a few without spilling any).
bool PreferLocal(const server::ClusterRuntime& cluster, bool some_out) {
  if (!some_out) return true;
  const std::vector<uint32_t>& local = cluster.lb.local;
  size_t in = 0;
  for (uint32_t i : local) in += Healthy(cluster, i) && BreakerClosed(cluster, i);
  double share = 1.4 * static_cast<double>(in) / static_cast<double>(local.size());
  return share >= 1 || absl::Uniform<double>(Gen(), 0, 1) < share;
}

}  // namespace

LbPick PickEndpoint(const server::ClusterRuntime& cluster, int worker, const LbRequest& req,
                    absl::Time now, stats::Writer& stats) {
  const upstream::ClusterState& state = *cluster.state;
  // Two relaxed loads of lines written only when an endpoint leaves or rejoins rotation.
  bool some_out = (cluster.config->circuit_breaker.enabled &&
                   state.breakers_open.load(std::memory_order_relaxed) != 0) ||
                  state.unhealthy_endpoints.load(std::memory_order_relaxed) != 0;
  if (!cluster.lb.local.empty() && PreferLocal(cluster, some_out)) {
    // In zone: the policy's pick if it is usable, else the first usable one from a random
    // start; out of zone only if every local endpoint is out or tried.
    auto usable = [&](uint32_t i) {
      if (Avoided(req.tried, i)) return Breaker::Admission::kRefused;
      return some_out ? Usable(cluster, i, now, stats) : Breaker::Admission::kAdmitted;
    };
    uint32_t i = ByPolicy(cluster, worker, req, req.tried, true);
    Breaker::Admission a = usable(i);
    if (a != Breaker::Admission::kRefused) return Picked(i, a);
    const std::vector<uint32_t>& local = cluster.lb.local;
    size_t start = absl::Uniform<size_t>(Gen(), 0, local.size());
    for (size_t k = 0; k < local.size(); ++k) {
      uint32_t j = local[(start + k) % local.size()];
      if (j == i) continue;
      a = usable(j);
      if (a != Breaker::Admission::kRefused) return Picked(j, a);
    }
  }
  if (some_out) return PickAvailable(cluster, worker, req, now, stats);
  return {ByPolicy(cluster, worker, req, req.tried, false), false, false};
}

}  // namespace remora::upstream
