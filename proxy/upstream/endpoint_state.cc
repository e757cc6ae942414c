#include "proxy/upstream/endpoint_state.h"

#include "absl/strings/str_cat.h"

namespace remora::upstream {

EndpointState::EndpointState(std::string a, std::shared_ptr<ClusterState> c)
    : address(std::move(a)), cluster(std::move(c)) {}

EndpointState::~EndpointState() {
  breaker.Release(*cluster);
  SetHealthy(true);
}

bool EndpointState::SetHealthy(bool value) {
  if (healthy.exchange(value) == value) return false;
  cluster->unhealthy_endpoints.fetch_add(value ? -1 : 1, std::memory_order_relaxed);
  return true;
}

std::shared_ptr<ClusterState> EndpointStateRegistry::Cluster(const std::string& name) {
  auto& slot = clusters_[name];
  if (slot == nullptr) slot = std::make_shared<ClusterState>(name);
  return slot;
}

std::shared_ptr<EndpointState> EndpointStateRegistry::Endpoint(const std::string& cluster,
                                                               const std::string& address,
                                                               const std::string& variant) {
  auto& slot = endpoints_[absl::StrCat(cluster, "|", address, "|", variant)];
  if (slot == nullptr) slot = std::make_shared<EndpointState>(address, Cluster(cluster));
  return slot;
}

void EndpointStateRegistry::Prune() {
  // Endpoints first: each holds its cluster's state.
  absl::erase_if(endpoints_, [](const auto& kv) { return kv.second.use_count() == 1; });
  absl::erase_if(clusters_, [](const auto& kv) { return kv.second.use_count() == 1; });
}

}  // namespace remora::upstream
