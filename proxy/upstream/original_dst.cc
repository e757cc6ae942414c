#include "proxy/upstream/original_dst.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace remora::upstream {

namespace {

// The address bytes and port of an IPv4 or IPv6 socket address.
void Pack(const sockaddr_storage& a, std::array<uint8_t, 16>* bytes, uint16_t* port) {
  bytes->fill(0);
  if (a.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
    std::memcpy(bytes->data(), &in6.sin6_addr, 16);
    if (port != nullptr) *port = in6.sin6_port;
  } else {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a);
    std::memcpy(bytes->data(), &in.sin_addr, 4);
    if (port != nullptr) *port = in.sin_port;
  }
}

}  // namespace

void OriginalDstEndpoints::Get(const server::ClusterRuntime& cluster,
                               const network::Destination& destination,
                               server::EndpointRuntime* out) {
  Key key{};
  key.cluster = cluster.state.get();
  key.family = static_cast<uint8_t>(destination.address.ss_family);
  key.bind_source = destination.bind_source;
  Pack(destination.address, &key.address, &key.port);
  if (destination.bind_source) Pack(destination.source, &key.source, nullptr);

  std::weak_ptr<EndpointState>& slot = states_[key];
  std::shared_ptr<EndpointState> state = slot.lock();
  if (state == nullptr) {
    state = std::make_shared<EndpointState>(
        network::FormatSockaddr(reinterpret_cast<const sockaddr*>(&destination.address)),
        cluster.state);
    slot = state;
    if (states_.size() >= sweep_at_) {
      absl::erase_if(states_, [](const auto& kv) { return kv.second.expired(); });
      sweep_at_ = std::max<size_t>(64, 2 * states_.size());
    }
  }
  out->address = destination.address;
  out->address_text = state->address;
  out->weight = 1;
  out->bind_source = destination.bind_source;
  out->source = destination.source;
  out->state = std::move(state);
}

size_t OriginalDstEndpoints::live() const {
  return static_cast<size_t>(std::count_if(states_.begin(), states_.end(),
                                           [](const auto& kv) { return !kv.second.expired(); }));
}

}  // namespace remora::upstream
