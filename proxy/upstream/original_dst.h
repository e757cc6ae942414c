#pragma once

// The endpoints of original_dst clusters, for one worker. Such a cluster lists no endpoints: each
// request goes to its connection's original destination (network::Destination). The worker's
// pools key on an endpoint's state, so every request to one destination must get the same state
// for connections to be reused; this table hands it out.
//
// It holds states weakly. A destination's state lives while a request to it runs or a pooled
// connection to it is open, and is forgotten after: the table never holds more destinations than
// the worker has requests in flight and connections open (bounded by the cluster's
// max_connections), and a destination left idle goes with its last idle connection (the cluster's
// idle_connection_timeout). Forgotten entries are swept as the table grows.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "proxy/network/address.h"
#include "proxy/server/snapshot.h"
#include "proxy/upstream/endpoint_state.h"

namespace remora::upstream {

class OriginalDstEndpoints {
 public:
  // Fills `out` (address, source, state) for a request to `destination` through the original_dst
  // `cluster`.
  void Get(const server::ClusterRuntime& cluster, const network::Destination& destination,
           server::EndpointRuntime* out);

  // Entries, forgotten ones included until the next sweep (for tests).
  size_t size() const { return states_.size(); }
  // Destinations whose state is still held.
  size_t live() const;

 private:
  struct Key {
    const ClusterState* cluster;
    std::array<uint8_t, 16> address;  // IPv4 in the first 4 bytes
    std::array<uint8_t, 16> source;   // zero without bind_source
    uint16_t port;
    uint8_t family;
    bool bind_source;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.cluster, k.address, k.source, k.port, k.family,
                        k.bind_source);
    }
    bool operator==(const Key&) const = default;
  };

  absl::flat_hash_map<Key, std::weak_ptr<EndpointState>> states_;
  size_t sweep_at_ = 64;  // sweep forgotten entries when the table reaches this size
};

}  // namespace remora::upstream
