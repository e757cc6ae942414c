#include "proxy/upstream/original_dst.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

// OriginalDstEndpoints against its contract: one state per (cluster, destination, source) while
// any holder keeps it, forgotten after, and a table that does not grow with destinations gone.

namespace remora::upstream {
namespace {

network::Destination To(const char* ip, uint16_t port) {
  network::Destination d{};
  auto& a = reinterpret_cast<sockaddr_in&>(d.address);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return d;
}

network::Destination From127_0_0_6(network::Destination d) {
  auto& s = reinterpret_cast<sockaddr_in&>(d.source);
  s.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.6", &s.sin_addr);
  d.bind_source = true;
  return d;
}

server::ClusterRuntime Cluster(const std::string& name) {
  server::ClusterRuntime c;
  c.state = std::make_shared<ClusterState>(name);
  return c;
}

TEST(OriginalDstEndpointsTest, OneStatePerDestinationWhileItIsHeld) {
  OriginalDstEndpoints table;
  server::ClusterRuntime cluster = Cluster("passthrough");
  server::EndpointRuntime a, b, c, d;
  table.Get(cluster, To("10.0.0.1", 80), &a);
  table.Get(cluster, To("10.0.0.1", 80), &b);
  EXPECT_EQ(a.state, b.state);  // one pool key: connections to it are reused
  EXPECT_EQ(a.address_text, "10.0.0.1:80");
  EXPECT_EQ(a.state->cluster, cluster.state);
  table.Get(cluster, To("10.0.0.1", 81), &c);
  EXPECT_NE(c.state, a.state);
  // The same address delivered from another source is another endpoint (another socket).
  table.Get(cluster, From127_0_0_6(To("10.0.0.1", 80)), &d);
  EXPECT_NE(d.state, a.state);
  EXPECT_TRUE(d.bind_source);
  EXPECT_FALSE(a.bind_source);
  // Another cluster (inbound vs outbound passthrough) never shares.
  server::ClusterRuntime other = Cluster("inbound_passthrough");
  server::EndpointRuntime e;
  table.Get(other, To("10.0.0.1", 80), &e);
  EXPECT_NE(e.state, a.state);
  EXPECT_EQ(table.live(), 4u);
}

TEST(OriginalDstEndpointsTest, ADestinationNobodyHoldsIsForgotten) {
  OriginalDstEndpoints table;
  server::ClusterRuntime cluster = Cluster("passthrough");
  std::weak_ptr<EndpointState> first;
  {
    server::EndpointRuntime a;
    table.Get(cluster, To("10.0.0.1", 80), &a);
    first = a.state;
  }
  EXPECT_TRUE(first.expired());  // nothing kept it: no request, no pooled connection
  EXPECT_EQ(table.live(), 0u);
  server::EndpointRuntime again;
  table.Get(cluster, To("10.0.0.1", 80), &again);
  EXPECT_NE(again.state, nullptr);
  EXPECT_EQ(table.live(), 1u);
}

TEST(OriginalDstEndpointsTest, TheTableDoesNotGrowWithDestinationsGone) {
  OriginalDstEndpoints table;
  server::ClusterRuntime cluster = Cluster("passthrough");
  std::vector<server::EndpointRuntime> held(10);
  for (int i = 0; i < 10; ++i) table.Get(cluster, To("10.1.0.1", 1000 + i), &held[i]);
  // 10,000 destinations, each let go at once (a scan of the internet, say).
  for (int i = 0; i < 10000; ++i) {
    server::EndpointRuntime e;
    table.Get(cluster, To("10.2.0.1", static_cast<uint16_t>(2000 + i % 60000)), &e);
  }
  EXPECT_LE(table.size(), 256u);  // swept as it grew: bounded by what is held, not by history
  EXPECT_EQ(table.live(), 10u);
  for (int i = 0; i < 10; ++i) {
    server::EndpointRuntime e;
    table.Get(cluster, To("10.1.0.1", 1000 + i), &e);
    EXPECT_EQ(e.state, held[i].state);  // the held ones survived every sweep
  }
}

}  // namespace
}  // namespace remora::upstream
