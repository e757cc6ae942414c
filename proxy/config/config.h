#pragma once

// The typed bootstrap configuration. Plain structs with defaults; produced only by the decoder in
// decode.h (from YAML or JSON text), so every instance that reaches the runtime has been validated:
// names are unique, references resolve, listener addresses do not conflict, values are in range.
// docs/config.md documents every field.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace remora::config {

// An IP literal and a port. Hostnames are not accepted in the bootstrap: a sidecar must not block
// its start on DNS, and discovery delivers addresses.
struct SocketAddress {
  std::string ip;  // "127.0.0.1" or "::1" (no brackets)
  uint16_t port = 0;
  bool is_ipv6 = false;

  // "127.0.0.1:80" or "[::1]:80".
  std::string ToString() const;
  bool operator==(const SocketAddress& o) const { return ip == o.ip && port == o.port; }
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// tcp: every connection to `cluster`; http: HTTP/1.1 and h2c through routes. outbound and
// inbound are transparent (proxy/server/protocol_sniffer.h): the protocol is detected from the
// first bytes and the original destination read from the socket.
enum class ListenerKind { kTcp, kHttp, kOutbound, kInbound };
inline bool IsTransparent(ListenerKind k) {
  return k == ListenerKind::kOutbound || k == ListenerKind::kInbound;
}

// Which side of the local app an http listener sits on; it decides the forwarding-header policy
// (docs/http.md): inbound listeners take traffic from the mesh to the local app, outbound ones
// from the local app to the mesh.
enum class Direction { kOutbound, kInbound };

struct HeaderValue {
  std::string name;
  std::string value;
};

// TLS on a listener (termination) or a cluster (origination), from PEM files (docs/tls.md).
// Inbound listeners under mutual TLS (docs/tls.md "Inbound listeners"): kStrict refuses what
// is not mutual TLS from the mesh; kPermissive also takes plaintext, and TLS that is not the
// mesh's (the app's own) passes through to the app still encrypted.
enum class TlsMode : uint8_t { kStrict, kPermissive };

struct Tls {
  bool enabled = false;  // a `tls` block was given
  std::string cert;      // certificate chain; listeners: required; clusters: for mutual TLS
  std::string key;
  // The trust bundle. Listeners: with it, clients must present a workload certificate it
  // vouches for (mutual TLS); clusters: required, the upstream's certificate is checked with it.
  std::string ca;
  // Clusters: the server name to ask for, and who the upstream must be: one SPIFFE ID exactly,
  // or any of a trust domain; with neither, a plain TLS server whose certificate names `sni`.
  std::string sni;
  std::string spiffe_id;
  std::string trust_domain;
  // Listeners: a handshake not done within this is closed (counted as reason "timeout").
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Inbound http listeners under mutual TLS: tell the app who called, in
  // x-forwarded-client-cert (By=<our ID>;URI=<the caller's ID>).
  bool forward_client_cert = false;
  TlsMode mode = TlsMode::kStrict;  // inbound listeners only
};

// A request header condition: the field is present, or (with a value) equals it exactly.
struct HeaderMatch {
  std::string name;
  std::string value;
  bool has_value = false;
};

// Every given condition must hold. Paths are matched against the normalised path (without the
// query). At most one of prefix, path and regex.
struct RouteMatch {
  std::string authority;  // exact, case-insensitive, port ignored if absent here
  std::string prefix;
  std::string path;
  std::string regex;  // ECMAScript, whole-path match
  std::string method;
  std::vector<HeaderMatch> headers;
};

// What makes a failed attempt worth another (docs/http.md "Retries"). A bit set; the response
// statuses and gRPC statuses listed in `retry_on` are kept beside it.
enum RetryOn : uint32_t {
  kRetryOn5xx = 1u << 0,             // any 5xx response, or no response (reset, per-try timeout)
  kRetryOnGatewayError = 1u << 1,    // 502, 503, 504, or no response
  kRetryOnReset = 1u << 2,           // closed or reset before a response head; per-try timeout
  kRetryOnConnectFailure = 1u << 3,  // connect refused or timed out
  kRetryOnRefusedStream = 1u << 4,   // HTTP/2 REFUSED_STREAM or above a GOAWAY's last stream
};

struct RetryPolicy {
  // Attempts in all, the first one included.
  uint32_t attempts = 3;
  uint32_t retry_on =
      kRetryOnConnectFailure | kRetryOnRefusedStream | kRetryOnReset | kRetryOnGatewayError;
  std::vector<uint16_t> status_codes;  // responses retried by their status
  uint32_t grpc_statuses = 0;          // bit n: grpc-status n is retried
  // One attempt's limit, from the end of the request (or the attempt's start, if later) to the
  // response's first byte; 0 = none (the route's timeout still bounds them all).
  absl::Duration per_try_timeout = absl::ZeroDuration();
  // Full jitter: the n-th retry (n = 0, 1, ...) waits uniform[0, min(max, base * 2^n)].
  absl::Duration backoff_base = absl::Milliseconds(25);
  absl::Duration backoff_max = absl::Milliseconds(250);
  // A request body kept for replay up to this size; a longer body is not retried.
  uint32_t buffer_limit_bytes = 64 * 1024;
};

// A local token bucket (docs/config.md "rate_limit"): `requests_per_second` sustained, `burst`
// at once. Keyed: one bucket per value of a request header or per client address, the most
// recently used `max_keys` kept per worker.
struct RateLimit {
  double requests_per_second = 0;
  uint32_t burst = 0;
  std::string key_header;  // lower case; empty: not keyed by a header
  bool key_client_address = false;
  uint32_t max_keys = 10000;
  bool keyed() const { return key_client_address || !key_header.empty(); }
};

// The response a route gives while its cluster's breaker is open (every endpoint ejected),
// instead of 503 circuit_open.
struct FallbackResponse {
  uint16_t status = 503;
  std::vector<HeaderValue> headers;
  std::string body;
};

// Who may call a route (filters/mtls_authz): conditions on the caller's SPIFFE ID (mutual TLS),
// the method and the normalised path; every given list must have a match.
struct AuthzRule {
  // "spiffe://td/ns/a/sa/b" exactly; "spiffe://td/ns/a/*" any ID under that path; "ns/a/*" any
  // ID of namespace a (any trust domain the bundle vouches for); "*" any authenticated caller.
  std::vector<std::string> peers;
  std::vector<std::string> methods;
  std::vector<std::string> paths;  // "/exact", or "/prefix*"
};
// Deny rules first (one matching: refused); then, if there are allow rules, one must match.
struct Authorization {
  std::vector<AuthzRule> allow;
  std::vector<AuthzRule> deny;
};

struct Route {
  std::string name;
  RouteMatch match;
  std::string cluster;
  std::vector<HeaderValue> request_headers_to_add;  // replace any field of the same name
  std::vector<std::string> request_headers_to_remove;
  std::vector<HeaderValue> response_headers_to_add;
  std::vector<std::string> response_headers_to_remove;
  // From the end of the request to the response's first byte; 0 = no limit. Past it: 504.
  // It bounds every attempt and the backoff between them.
  absl::Duration timeout = absl::Seconds(15);
  bool has_retries = false;  // a `retries` block was given
  RetryPolicy retries;
  // Every request on this route may be repeated safely (gRPC methods, which are all POST);
  // otherwise only idempotent methods and requests with Idempotency-Key are retried once they
  // may have reached the upstream.
  bool idempotent = false;
  bool has_fallback = false;  // a `fallback` block was given
  FallbackResponse fallback;
  bool has_rate_limit = false;
  RateLimit rate_limit;
  bool has_authorization = false;  // an `authorization` block was given
  Authorization authorization;
  int line = 0;
};

struct Listener {
  std::string name;
  SocketAddress address;
  ListenerKind kind = ListenerKind::kTcp;
  std::string cluster;  // tcp: where every connection goes
  // http listeners:
  Direction direction = Direction::kOutbound;
  std::vector<Route> routes;  // first match wins
  // A client must send a whole request head within this time of starting it (or of connecting).
  absl::Duration request_header_timeout = absl::Seconds(10);
  // A keep-alive connection with no request in progress is closed after this long.
  absl::Duration idle_timeout = absl::Seconds(60);
  uint32_t max_request_header_bytes = 60 * 1024;
  uint32_t max_request_headers = 100;
  // Start a trace (traceparent) for requests that arrive without one.
  bool create_trace_context = true;
  // Forward the normalised path upstream instead of the path as the client sent it.
  bool forward_normalized_path = false;
  // A stream with no bytes moving either way for this long is ended (0: never).
  absl::Duration stream_idle_timeout = absl::Minutes(5);
  // HTTP/2 (h2c prior knowledge on the same listener): streams a client may have open at once,
  // and the token bucket of stream resets it may send before the connection is closed with
  // GOAWAY (rapid reset).
  uint32_t http2_max_concurrent_streams = 100;
  uint32_t http2_reset_burst = 1000;
  uint32_t http2_reset_rate = 33;
  // Bytes buffered per direction before reading from the other side stops (high watermark);
  // reading resumes when the backlog falls below half of it.
  uint32_t buffer_limit_bytes = 256 * 1024;
  // http listeners: a limit on every request the listener takes (routes may add their own).
  bool has_rate_limit = false;
  RateLimit rate_limit;
  // Transparent listeners: how long to wait for a client's first bytes before treating the
  // connection as opaque TCP, and the destination ports whose servers speak first (no wait).
  absl::Duration detect_timeout = absl::Milliseconds(100);
  std::vector<uint16_t> server_first_ports = {25, 587, 3306, 5432, 6379, 11211, 9300, 27017};
  // Transparent listeners: TLS connections whose ClientHello names a matching server (exact, or
  // "*.suffix"; empty: any) and offers one of `alpn` (empty: any) go to that cluster, still
  // encrypted; the first match wins.
  struct TlsRoute {
    std::string sni;
    std::vector<std::string> alpn;
    std::string cluster;
  };
  std::vector<TlsRoute> tls_routes;
  // Transparent listeners: what no route or cluster takes goes to its original destination,
  // through the original_dst cluster of the listener's direction (kPassthroughCluster,
  // kInboundPassthroughCluster). false: HTTP gets 404 no_route, other connections are closed.
  bool passthrough = true;
  Tls tls;  // http and tcp listeners: terminate TLS
  // Inbound listeners: the app's port on loopback for what is relayed as TCP without a cluster;
  // 0: the original destination's port.
  uint16_t app_port = 0;
  int line = 0;  // where the listener was defined, for later diagnostics
};

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;
  std::string zone;  // empty: unknown
};

// How a request picks its endpoint (proxy/upstream/load_balancer.h).
enum class LbPolicy : uint8_t { kRoundRobin, kRandom, kLeastRequest, kRingHash };

// What counts against an endpoint's breaker (docs/config.md "circuit_breaker"). A bit set.
enum BreakerFailure : uint32_t {
  kBreakOn5xx = 1u << 0,             // a 5xx response
  kBreakOnGatewayError = 1u << 1,    // 502, 503, 504
  kBreakOnReset = 1u << 2,           // closed or reset before a whole response
  kBreakOnConnectFailure = 1u << 3,  // connect refused or timed out
  kBreakOnTimeout = 1u << 4,         // per-try or route timeout with the attempt in flight
};

// The per-endpoint breaker, which is outlier ejection (proxy/upstream/breaker.h), and the
// cluster breaker it makes: open when every endpoint's is.
struct CircuitBreaker {
  bool enabled = false;  // a `circuit_breaker` block was given
  // Opens after this many failures in a row (0: not by count).
  uint32_t consecutive_failures = 5;
  // Opens when failures / requests reach this within `window`, once `min_requests` were seen
  // there (0: not by ratio).
  double failure_ratio = 0;
  absl::Duration window = absl::Seconds(10);
  uint32_t min_requests = 20;
  uint32_t failure_on = kBreakOn5xx | kBreakOnReset | kBreakOnConnectFailure | kBreakOnTimeout;
  // Open for open_for * 2^(openings - 1), capped at max_open_for; an endpoint that stays closed
  // for max_open_for starts again from open_for.
  absl::Duration open_for = absl::Seconds(5);
  absl::Duration max_open_for = absl::Seconds(60);
  // Half-open: probe requests let through at once.
  uint32_t half_open_requests = 1;
  // At most this share of the cluster's endpoints are open at once.
  uint32_t max_ejection_percent = 100;
};

// Active HTTP health checking (proxy/upstream/health_checker.h): GET `path` on every endpoint
// each `interval`; a 2xx within `timeout` passes.
struct HealthCheck {
  bool enabled = false;  // a `health_check` block was given
  std::string path = "/";
  std::string host;  // the Host field; empty: the endpoint's address
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(1);
  uint32_t healthy_threshold = 2;    // passes in a row that bring an endpoint back
  uint32_t unhealthy_threshold = 3;  // failures in a row that take it out
};

// The protocol spoken to a cluster's endpoints; kAuto: the one the request arrived with.
enum class UpstreamProtocol : uint8_t { kAuto, kHttp1, kHttp2 };

// static: the endpoints listed (or discovered). original_dst: no endpoints; each request or
// connection goes to its own original destination (transparent listeners only), over pools kept
// per destination.
enum class ClusterType : uint8_t { kStatic, kOriginalDst };

// The original_dst clusters a transparent listener's passthrough uses. A config that does not
// define them gets them with the defaults (the decoder adds them).
inline constexpr char kPassthroughCluster[] = "passthrough";
inline constexpr char kInboundPassthroughCluster[] = "inbound_passthrough";

struct Cluster {
  std::string name;
  ClusterType type = ClusterType::kStatic;
  UpstreamProtocol protocol = UpstreamProtocol::kAuto;
  LbPolicy lb_policy = LbPolicy::kLeastRequest;
  // ring_hash: the key, a request header's value (hash_header set) or else the client address.
  std::string hash_header;
  std::vector<Endpoint> endpoints;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Upper bound on concurrent upstream connections to the whole cluster (all workers together);
  // a connection over it is refused and counted as overflow, never as an endpoint failure.
  uint32_t max_connections = 1024;
  // Upper bound on HTTP requests in flight to the cluster (all workers together); 0 = none. A
  // request over it gets 503 overflow at once, never counted as an endpoint failure.
  uint32_t max_requests = 0;
  // Upper bound on requests waiting for a connection or stream (all workers); 0 = none. Over it:
  // 503 overflow.
  uint32_t max_pending_requests = 0;
  // Upper bound on retries in flight (all workers), beside the budget; 0 = none.
  uint32_t max_retries = 0;
  CircuitBreaker circuit_breaker;
  HealthCheck health_check;
  Tls tls;  // originate TLS to the endpoints
  // Below this share of endpoints available (healthy, breaker closed), but above none, the load
  // balancer uses every endpoint (panic): a few survivors are not buried under all the load.
  uint32_t panic_threshold_percent = 50;
  // HTTP keep-alive pools (per worker, per endpoint): idle connections kept, and for how long.
  uint32_t max_idle_connections = 1024;
  absl::Duration idle_connection_timeout = absl::Seconds(30);
  // Retries in flight to the cluster (all workers) stay <= max(retry_budget_min_concurrency,
  // retry_budget_ratio * active requests): an outage cannot multiply the load.
  double retry_budget_ratio = 0.2;
  uint32_t retry_budget_min_concurrency = 3;
  int line = 0;
};

struct Admin {
  SocketAddress address{"127.0.0.1", 15000, false};
  // Bearer token for mutating endpoints (POST /drain, /logging). Empty: those endpoints are only
  // reachable through unix_socket.
  std::string token;
  std::string unix_socket;  // optional path; connections on it are trusted
};

struct Config {
  Admin admin;
  // 0 = automatic: the cgroup CPU limit (cpu.max) rounded up, else 2. Never the host's cores.
  uint32_t workers = 0;
  // The zone this proxy runs in; with it, clusters prefer endpoints of the same zone
  // (proxy/upstream/load_balancer.h). Empty: unknown.
  std::string zone;
  absl::Duration drain_timeout = absl::Seconds(30);
  LogLevel log_level = LogLevel::kInfo;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* FindCluster(const std::string& name) const;
};

const char* LogLevelName(LogLevel level);
const char* ListenerKindName(ListenerKind kind);
const char* DirectionName(Direction direction);
const char* UpstreamProtocolName(UpstreamProtocol protocol);
const char* LbPolicyName(LbPolicy policy);
const char* ClusterTypeName(ClusterType type);
const char* TlsModeName(TlsMode mode);
// The named conditions and gRPC statuses of retry_on (its status codes are in status_codes).
std::vector<std::string> RetryOnNames(const RetryPolicy& policy);
std::vector<std::string> BreakerFailureNames(uint32_t failure_on);

}  // namespace remora::config
