#include "proxy/config/render.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/config/decode.h"

namespace remora::config {
namespace {

constexpr char kConfig[] = R"(
admin:
  address: "[::1]:15000"
  token: s3cret
  unix_socket: /run/remora/admin.sock
workers: 3
zone: z1
drain_timeout: 1.5s
log_level: off
listeners:
  - name: app-in
    address: 127.0.0.1:15001
    kind: tcp
    cluster: app
    buffer_limit_bytes: 20000
  - name: app-out
    address: 0.0.0.0:0
    kind: tcp
    cluster: db
  - name: web
    address: 127.0.0.1:15002
    kind: http
    rate_limit: {requests_per_second: 50, key: {client_address: true}}
    routes:
      - cluster: app
        idempotent: true
        retries:
          attempts: 4
          retry_on: [5xx, reset, 409, unavailable]
          per_try_timeout: 300ms
          backoff: {base: 10ms, max: 1s}
        rate_limit: {requests_per_second: 0.5, burst: 3, key: {header: x-user}, max_keys: 9}
        authorization:
          allow: [{peers: ["ns/a/*"], methods: [GET], paths: ["/x*"]}]
          deny: [{peers: ["spiffe://td/ns/a/sa/b"]}]
        fallback:
          status: 200
          headers: [{name: content-type, value: application/json}]
          body: "{}"
      - cluster: db
  - name: out
    address: 0.0.0.0:15010
    kind: outbound
    passthrough: false
    cluster: anywhere
  - name: in
    address: 0.0.0.0:15011
    kind: inbound
    tls: {cert: /c.pem, key: /k.pem, ca: /ca.pem, mode: permissive, forward_client_cert: true}
clusters:
  - name: app
    connect_timeout: 250ms
    max_connections: 7
    retry_budget: {ratio: 0.5, min_concurrency: 10}
    max_pending_requests: 9
    max_retries: 4
    circuit_breaker:
      consecutive_failures: 3
      failure_ratio: 0.25
      failure_on: [gateway-error, timeout]
      open_for: 2s
    lb_policy: ring_hash
    hash_on: {header: x-user}
    endpoints:
      - address: 127.0.0.1:8080
        weight: 5
        zone: z2
      - address: "[2001:db8::1]:8080"
  - name: db
    connect_timeout: 0.0015s
    tls: {ca: /ca.pem, cert: /c.pem, key: /k.pem, trust_domain: td, sni: db.test}
    endpoints:
      - address: 10.0.0.2:5432
  - name: anywhere
    type: original_dst
    max_connections: 3
)";

Config MustDecode(const std::string& text) {
  Config c;
  std::vector<ConfigError> errors;
  EXPECT_TRUE(DecodeConfig(text, &c, &errors))
      << (errors.empty() ? "" : errors[0].Format("render"));
  return c;
}

void ExpectSameConfig(const Config& a, const Config& b) {
  EXPECT_EQ(a.admin.address, b.admin.address);
  EXPECT_EQ(a.admin.address.is_ipv6, b.admin.address.is_ipv6);
  EXPECT_EQ(a.admin.token, b.admin.token);
  EXPECT_EQ(a.admin.unix_socket, b.admin.unix_socket);
  EXPECT_EQ(a.workers, b.workers);
  EXPECT_EQ(a.drain_timeout, b.drain_timeout);
  EXPECT_EQ(a.log_level, b.log_level);
  ASSERT_EQ(a.listeners.size(), b.listeners.size());
  for (size_t i = 0; i < a.listeners.size(); ++i) {
    EXPECT_EQ(a.listeners[i].name, b.listeners[i].name);
    EXPECT_EQ(a.listeners[i].address, b.listeners[i].address);
    EXPECT_EQ(a.listeners[i].kind, b.listeners[i].kind);
    EXPECT_EQ(a.listeners[i].passthrough, b.listeners[i].passthrough);
    EXPECT_EQ(a.listeners[i].cluster, b.listeners[i].cluster);
    EXPECT_EQ(a.listeners[i].buffer_limit_bytes, b.listeners[i].buffer_limit_bytes);
    EXPECT_EQ(a.listeners[i].tls.enabled, b.listeners[i].tls.enabled);
    EXPECT_EQ(a.listeners[i].tls.mode, b.listeners[i].tls.mode);
    EXPECT_EQ(a.listeners[i].tls.ca, b.listeners[i].tls.ca);
  }
  ASSERT_EQ(a.clusters.size(), b.clusters.size());
  for (size_t i = 0; i < a.clusters.size(); ++i) {
    EXPECT_EQ(a.clusters[i].name, b.clusters[i].name);
    EXPECT_EQ(a.clusters[i].type, b.clusters[i].type);
    EXPECT_EQ(a.clusters[i].connect_timeout, b.clusters[i].connect_timeout);
    EXPECT_EQ(a.clusters[i].max_connections, b.clusters[i].max_connections);
    EXPECT_EQ(a.clusters[i].tls.trust_domain, b.clusters[i].tls.trust_domain);
    EXPECT_EQ(a.clusters[i].tls.sni, b.clusters[i].tls.sni);
    ASSERT_EQ(a.clusters[i].endpoints.size(), b.clusters[i].endpoints.size());
    for (size_t j = 0; j < a.clusters[i].endpoints.size(); ++j) {
      EXPECT_EQ(a.clusters[i].endpoints[j].address, b.clusters[i].endpoints[j].address);
      EXPECT_EQ(a.clusters[i].endpoints[j].weight, b.clusters[i].endpoints[j].weight);
    }
  }
}

TEST(ConfigToJsonTest, RoundTripsThroughDecode) {
  const Config original = MustDecode(kConfig);
  for (int indent : {-1, 2}) {
    const std::string dumped = ConfigToJson(original, /*redact_secrets=*/false).dump(indent);
    SCOPED_TRACE(dumped);
    const Config back = MustDecode(dumped);
    ExpectSameConfig(original, back);
    // And rendering is stable.
    EXPECT_EQ(ConfigToJson(back, false), ConfigToJson(original, false));
  }
}

TEST(ConfigToJsonTest, UsesTheYamlFieldNamesAndStringForms) {
  const nlohmann::json j = ConfigToJson(MustDecode(kConfig), /*redact_secrets=*/false);
  EXPECT_EQ(j["admin"]["address"], "[::1]:15000");
  EXPECT_EQ(j["admin"]["token"], "s3cret");
  EXPECT_EQ(j["admin"]["unix_socket"], "/run/remora/admin.sock");
  EXPECT_EQ(j["workers"], 3);
  EXPECT_EQ(j["zone"], "z1");
  EXPECT_EQ(j["clusters"][0]["endpoints"][0]["zone"], "z2");
  EXPECT_FALSE(j["clusters"][0]["endpoints"][1].contains("zone"));
  EXPECT_EQ(j["drain_timeout"], "1500ms");
  EXPECT_EQ(j["log_level"], "off");
  EXPECT_EQ(j["listeners"][0]["name"], "app-in");
  EXPECT_EQ(j["listeners"][0]["address"], "127.0.0.1:15001");
  EXPECT_EQ(j["listeners"][0]["kind"], "tcp");
  EXPECT_EQ(j["listeners"][0]["cluster"], "app");
  EXPECT_EQ(j["listeners"][0]["buffer_limit_bytes"], 20000);
  EXPECT_EQ(j["listeners"][1]["buffer_limit_bytes"], 262144);  // defaults are shown
  EXPECT_EQ(j["clusters"][0]["connect_timeout"], "250ms");
  EXPECT_EQ(j["clusters"][0]["max_connections"], 7);
  EXPECT_EQ(j["clusters"][0]["endpoints"][0]["address"], "127.0.0.1:8080");
  EXPECT_EQ(j["clusters"][0]["endpoints"][0]["weight"], 5);
  EXPECT_EQ(j["clusters"][0]["endpoints"][1]["address"], "[2001:db8::1]:8080");
  EXPECT_EQ(j["clusters"][0]["endpoints"][1]["weight"], 1);
  EXPECT_EQ(j["clusters"][1]["connect_timeout"], "0.0015s");
  EXPECT_EQ(j["clusters"][1]["max_connections"], 1024);
  EXPECT_EQ(j["clusters"][0]["retry_budget"]["ratio"], 0.5);
  EXPECT_EQ(j["clusters"][0]["retry_budget"]["min_concurrency"], 10);
  EXPECT_EQ(j["clusters"][1]["retry_budget"]["ratio"], 0.2);
  EXPECT_EQ(j["clusters"][0]["lb_policy"], "ring_hash");
  EXPECT_EQ(j["clusters"][0]["hash_on"]["header"], "x-user");
  EXPECT_EQ(j["clusters"][1]["lb_policy"], "least_request");
  EXPECT_FALSE(j["clusters"][1].contains("hash_on"));
  EXPECT_EQ(j["clusters"][0]["max_pending_requests"], 9);
  EXPECT_EQ(j["clusters"][0]["max_retries"], 4);
  const nlohmann::json& breaker = j["clusters"][0]["circuit_breaker"];
  EXPECT_EQ(breaker["consecutive_failures"], 3);
  EXPECT_EQ(breaker["failure_ratio"], 0.25);
  EXPECT_EQ(breaker["failure_on"], nlohmann::json({"gateway-error", "timeout"}));
  EXPECT_EQ(breaker["open_for"], "2s");
  EXPECT_EQ(breaker["max_open_for"], "1m");
  EXPECT_EQ(j["clusters"][0]["panic_threshold_percent"], 50);
  EXPECT_FALSE(j["clusters"][1].contains("circuit_breaker"));
  EXPECT_EQ(j["listeners"][2]["routes"][0]["fallback"]["status"], 200);
  EXPECT_EQ(j["listeners"][2]["routes"][0]["fallback"]["body"], "{}");
  EXPECT_FALSE(j["listeners"][2]["routes"][1].contains("fallback"));
  EXPECT_EQ(j["listeners"][2]["rate_limit"]["burst"], 50);
  EXPECT_EQ(j["listeners"][2]["rate_limit"]["key"]["client_address"], true);
  EXPECT_EQ(j["listeners"][2]["routes"][0]["rate_limit"]["requests_per_second"], 0.5);
  EXPECT_EQ(j["listeners"][2]["routes"][0]["rate_limit"]["key"]["header"], "x-user");
  EXPECT_FALSE(j["listeners"][1].contains("rate_limit"));
  const nlohmann::json& route = j["listeners"][2]["routes"][0];
  EXPECT_EQ(route["idempotent"], true);
  EXPECT_EQ(route["retries"]["attempts"], 4);
  EXPECT_EQ(route["retries"]["retry_on"],
            nlohmann::json::parse(R"(["5xx", "reset", "unavailable", 409])"));
  EXPECT_EQ(route["retries"]["per_try_timeout"], "300ms");
  EXPECT_EQ(route["retries"]["backoff"]["base"], "10ms");
  EXPECT_EQ(route["retries"]["backoff"]["max"], "1s");
  EXPECT_EQ(route["retries"]["buffer_limit_bytes"], 65536);
  EXPECT_FALSE(j["listeners"][2]["routes"][1].contains("retries"));  // none given: none shown
  EXPECT_EQ(j["listeners"][4]["tls"]["mode"], "permissive");
  EXPECT_EQ(j["listeners"][4]["tls"]["handshake_timeout"], "10s");
  EXPECT_EQ(j["clusters"][1]["tls"]["trust_domain"], "td");
  EXPECT_FALSE(j["clusters"][1]["tls"].contains("mode"));
}

TEST(ConfigToJsonTest, AnOriginalDstClusterHasNoEndpointFields) {
  const nlohmann::json j = ConfigToJson(MustDecode(kConfig), /*redact_secrets=*/false);
  const nlohmann::json* anywhere = nullptr;
  const nlohmann::json* inbound = nullptr;
  for (const nlohmann::json& c : j["clusters"]) {
    if (c["name"] == "anywhere") anywhere = &c;
    if (c["name"] == "inbound_passthrough") inbound = &c;  // added for listener "in"
  }
  ASSERT_NE(anywhere, nullptr);
  ASSERT_NE(inbound, nullptr);
  EXPECT_EQ((*anywhere)["type"], "original_dst");
  EXPECT_EQ((*anywhere)["max_connections"], 3);
  EXPECT_FALSE(anywhere->contains("endpoints"));
  EXPECT_FALSE(anywhere->contains("lb_policy"));
  EXPECT_EQ((*inbound)["type"], "original_dst");
  EXPECT_EQ(j["clusters"][1]["type"], "static");
  EXPECT_EQ(j["listeners"][3]["passthrough"], false);
  EXPECT_EQ(j["listeners"][4]["passthrough"], true);
}

TEST(ConfigToJsonTest, RedactsTheToken) {
  const Config c = MustDecode(kConfig);
  const nlohmann::json j = ConfigToJson(c, /*redact_secrets=*/true);
  EXPECT_EQ(j["admin"]["token"], "<redacted>");
  EXPECT_EQ(j.dump().find("s3cret"), std::string::npos);
  // Nothing else changes.
  nlohmann::json plain = ConfigToJson(c, false);
  plain["admin"]["token"] = "<redacted>";
  EXPECT_EQ(j, plain);
}

TEST(ConfigToJsonTest, EmptyOptionalStringsAreLeftOut) {
  const Config c = MustDecode("{}");
  for (bool redact : {false, true}) {
    const nlohmann::json j = ConfigToJson(c, redact);
    EXPECT_FALSE(j["admin"].contains("token"));
    EXPECT_FALSE(j["admin"].contains("unix_socket"));
    EXPECT_EQ(j["admin"]["address"], "127.0.0.1:15000");
    EXPECT_EQ(j["drain_timeout"], "30s");
    EXPECT_TRUE(j["listeners"].is_array());
    EXPECT_TRUE(j["clusters"].is_array());
    ExpectSameConfig(c, MustDecode(j.dump()));
  }
}

}  // namespace
}  // namespace remora::config
