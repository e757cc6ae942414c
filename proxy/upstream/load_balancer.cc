#include "proxy/upstream/load_balancer.h"

#include <algorithm>
#include <numeric>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "proxy/server/snapshot.h"

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

bool Tried(const LbRequest& req, size_t i) { return i < 64 && (req.tried >> i) & 1; }

// The first endpoint from `i` on (cyclically) not tried yet; `i` itself if all were.
uint32_t Untried(const LbRequest& req, size_t i, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    size_t j = (i + k) % n;
    if (!Tried(req, j)) return static_cast<uint32_t>(j);
  }
  return static_cast<uint32_t>(i);
}

}  // namespace

uint64_t HashKey(absl::string_view key) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return Mix(h);
}

LbTables LbTables::Build(const config::Cluster& c) {
  LbTables t;
  size_t n = c.endpoints.size();
  std::vector<uint64_t> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = c.endpoints[i].weight;
  bool equal = std::all_of(w.begin(), w.end(), [&](uint64_t x) { return x == w[0]; });
  if (!equal) {
    uint64_t g = 0;
    for (uint64_t x : w) g = std::gcd(g, x);
    uint64_t total = 0;
    for (uint64_t& x : w) total += (x /= g);
    if (total > kMaxWeightedCycle) {
      for (uint64_t& x : w) x = std::max<uint64_t>(1, x * kMaxWeightedCycle / total);
    }
    // Smooth weighted round robin (each step: everyone gains its weight, the richest is chosen
    // and pays the total), so a heavy endpoint's turns are spread through the cycle.
    std::vector<int64_t> current(n, 0);
    int64_t sum = 0;
    for (uint64_t x : w) sum += static_cast<int64_t>(x);
    t.weighted.reserve(static_cast<size_t>(sum));
    for (int64_t step = 0; step < sum; ++step) {
      size_t best = 0;
      for (size_t i = 0; i < n; ++i) {
        current[i] += static_cast<int64_t>(w[i]);
        if (current[i] > current[best]) best = i;
      }
      current[best] -= sum;
      t.weighted.push_back(static_cast<uint32_t>(best));
    }
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

uint32_t PickEndpoint(const server::ClusterRuntime& cluster, int worker, const LbRequest& req) {
  const size_t n = cluster.endpoints.size();
  const server::ClusterRuntime::PerWorker& pw = cluster.per_worker[static_cast<size_t>(worker)];
  const std::vector<uint32_t>& weighted = cluster.lb.weighted;
  if (n == 1) return 0;
  uint32_t i = 0;
  switch (cluster.config->lb_policy) {
    case config::LbPolicy::kRoundRobin:
      i = weighted.empty() ? static_cast<uint32_t>(pw.rr_next++ % n)
                           : weighted[pw.rr_next++ % weighted.size()];
      break;
    case config::LbPolicy::kRandom:
      i = weighted.empty() ? absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n))
                           : weighted[absl::Uniform<size_t>(Gen(), 0, weighted.size())];
      break;
    case config::LbPolicy::kLeastRequest: {
      uint32_t a = absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n));
      uint32_t b = absl::Uniform<uint32_t>(Gen(), 0, static_cast<uint32_t>(n - 1));
      if (b >= a) ++b;  // two different endpoints
      // Fewer in flight per unit of weight: active_a / w_a < active_b / w_b, in integers.
      uint64_t la = static_cast<uint64_t>(pw.active[a]) * cluster.endpoints[b].weight;
      uint64_t lb = static_cast<uint64_t>(pw.active[b]) * cluster.endpoints[a].weight;
      i = lb < la ? b : a;
      if (Tried(req, i)) i = lb < la ? a : b;  // the other of the two, if this one was tried
      break;
    }
    case config::LbPolicy::kRingHash: {
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
        if (!Tried(req, e)) return e;
      }
      return ring[pos].endpoint;
    }
  }
  return Tried(req, i) ? Untried(req, (i + 1) % n, n) : i;
}

}  // namespace remora::upstream
