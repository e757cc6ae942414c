#include "proxy/config/decode.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/numeric/int128.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "proxy/config/value.h"
#include "tls/spiffe.h"

namespace remora::config {
namespace {

// Limits; docs/config.md explains each one.
constexpr int64_t kMaxWorkers = 256;
constexpr int64_t kMinBufferLimitBytes = 16 * 1024;
constexpr int64_t kMaxBufferLimitBytes = 64 * 1024 * 1024;
constexpr int64_t kMaxMaxConnections = 1000000;
constexpr int64_t kMaxWeight = 10000;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxTokenLength = 4096;
// sizeof(sockaddr_un::sun_path) is 108 on Linux, one of which is the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;
// Far above any real bootstrap file; stops `-c /dev/zero` from eating memory.
constexpr size_t kMaxConfigFileBytes = 16 * 1024 * 1024;

constexpr absl::Duration kMaxDrainTimeout = absl::Hours(1);
constexpr absl::Duration kMinConnectTimeout = absl::Milliseconds(1);
constexpr absl::Duration kMaxConnectTimeout = absl::Minutes(5);

constexpr absl::string_view kTopFields[] = {"admin",     "workers",   "zone",    "drain_timeout",
                                            "log_level", "listeners", "clusters"};
constexpr absl::string_view kAdminFields[] = {"address", "token", "unix_socket"};
constexpr absl::string_view kListenerFields[] = {"name",
                                                 "address",
                                                 "kind",
                                                 "cluster",
                                                 "buffer_limit_bytes",
                                                 "tls",
                                                 "direction",
                                                 "routes",
                                                 "request_header_timeout",
                                                 "idle_timeout",
                                                 "max_request_header_bytes",
                                                 "max_request_headers",
                                                 "create_trace_context",
                                                 "forward_normalized_path",
                                                 "stream_idle_timeout",
                                                 "http2_max_concurrent_streams",
                                                 "http2_reset_burst",
                                                 "http2_reset_rate",
                                                 "rate_limit",
                                                 "detect_timeout",
                                                 "server_first_ports",
                                                 "tls_routes",
                                                 "app_port",
                                                 "passthrough"};
// The fields after the first six apply to http (and transparent) listeners only; the last five
// to transparent ones only.
constexpr size_t kFirstHttpOnlyListenerField = 6;
constexpr size_t kTransparentOnlyListenerFields = 5;
constexpr absl::string_view kTlsRouteFields[] = {"sni", "alpn", "cluster"};
constexpr absl::string_view kTlsFields[] = {"cert",
                                            "key",
                                            "ca",
                                            "sni",
                                            "spiffe_id",
                                            "trust_domain",
                                            "handshake_timeout",
                                            "forward_client_cert",
                                            "mode"};
constexpr absl::string_view kRouteFields[] = {"name",
                                              "match",
                                              "cluster",
                                              "timeout",
                                              "request_headers_to_add",
                                              "request_headers_to_remove",
                                              "response_headers_to_add",
                                              "response_headers_to_remove",
                                              "retries",
                                              "idempotent",
                                              "fallback",
                                              "rate_limit",
                                              "authorization"};
constexpr absl::string_view kAuthorizationFields[] = {"allow", "deny"};
constexpr absl::string_view kAuthzRuleFields[] = {"peers", "methods", "paths"};
constexpr absl::string_view kRateLimitFields[] = {"requests_per_second", "burst", "key",
                                                  "max_keys"};
constexpr double kMaxRequestsPerSecond = 1e9;
constexpr absl::string_view kFallbackFields[] = {"status", "headers", "body"};
constexpr absl::string_view kRetryFields[] = {"attempts", "retry_on", "per_try_timeout", "backoff",
                                              "buffer_limit_bytes"};
constexpr absl::string_view kBackoffFields[] = {"base", "max"};
constexpr absl::string_view kRetryBudgetFields[] = {"ratio", "min_concurrency"};
constexpr absl::string_view kBreakerFields[] = {
    "consecutive_failures", "failure_ratio",      "window",
    "min_requests",         "failure_on",         "open_for",
    "max_open_for",         "half_open_requests", "max_ejection_percent"};
constexpr absl::string_view kHealthCheckFields[] = {
    "path", "host", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"};
// failure_on's names, in BreakerFailure's bit order.
constexpr absl::string_view kBreakerFailureNames[] = {"5xx", "gateway-error", "reset",
                                                      "connect-failure", "timeout"};
constexpr int64_t kMaxBreakerCount = 1000000;
// retry_on's named conditions, in RetryOn's bit order.
constexpr absl::string_view kRetryOnNames[] = {"5xx", "gateway-error", "reset", "connect-failure",
                                               "refused-stream"};
// The gRPC statuses retry_on may name (grpc/doc/statuscodes.md), with their codes.
constexpr std::pair<absl::string_view, int> kRetryGrpcStatuses[] = {{"cancelled", 1},
                                                                    {"deadline-exceeded", 4},
                                                                    {"resource-exhausted", 8},
                                                                    {"internal", 13},
                                                                    {"unavailable", 14}};
constexpr int64_t kMaxRetryAttempts = 10;
constexpr int64_t kMaxRetryBufferBytes = 16 * 1024 * 1024;
constexpr absl::Duration kMaxBackoff = absl::Hours(1);
constexpr absl::string_view kMatchFields[] = {"authority", "prefix", "path",
                                              "regex",     "method", "headers"};
constexpr absl::string_view kHeaderMatchFields[] = {"name", "value"};
constexpr absl::string_view kHeaderValueFields[] = {"name", "value"};
constexpr absl::string_view kClusterFields[] = {"name",
                                                "type",
                                                "protocol",
                                                "connect_timeout",
                                                "max_connections",
                                                "max_requests",
                                                "max_pending_requests",
                                                "max_retries",
                                                "max_idle_connections",
                                                "idle_connection_timeout",
                                                "retry_budget",
                                                "circuit_breaker",
                                                "health_check",
                                                "tls",
                                                "panic_threshold_percent",
                                                "lb_policy",
                                                "hash_on",
                                                "endpoints"};
// A key taken from a request: hash_on, a rate limit's key.
constexpr absl::string_view kRequestKeyFields[] = {"header", "client_address"};
constexpr absl::string_view kEndpointFields[] = {"address", "weight", "zone"};

// Indexed by the enums' values.
constexpr absl::string_view kLogLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr absl::string_view kListenerKindNames[] = {"tcp", "http", "outbound", "inbound"};
constexpr absl::string_view kDirectionNames[] = {"outbound", "inbound"};
constexpr absl::string_view kTlsModeNames[] = {"strict", "permissive"};
constexpr absl::string_view kUpstreamProtocolNames[] = {"auto", "http1", "http2"};
constexpr absl::string_view kLbPolicyNames[] = {"round_robin", "random", "least_request",
                                                "ring_hash"};
constexpr absl::string_view kClusterTypeNames[] = {"static", "original_dst"};
// Fields that pick among or watch endpoints, which an original_dst cluster does not have.
constexpr absl::string_view kEndpointPolicyFields[] = {"endpoints",    "lb_policy",
                                                       "hash_on",      "circuit_breaker",
                                                       "health_check", "panic_threshold_percent"};
constexpr int64_t kMaxRequestHeaderBytes = 1024 * 1024;
constexpr int64_t kMaxRequestHeaders = 1000;
constexpr int64_t kMaxIdleConnections = 10000;
constexpr int64_t kMaxHttp2Streams = 10000;
constexpr int64_t kMaxHttp2Resets = 1000000;
constexpr absl::Duration kMaxHttpTimeout = absl::Hours(24);

constexpr char kNameRule[] = "use 1 to 64 characters from a-z, A-Z, 0-9, '_', '.' and '-'";
constexpr char kDurationRule[] =
    "expected a number and a unit (ms, s, m or h), such as \"250ms\", \"1.5s\" or \"2m\"";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

// Edit distance, for "did you mean" on unknown fields. Inputs are short (field names).
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest allowed name if it is close enough to be a typo, else empty.
absl::string_view Suggest(absl::string_view key, absl::Span<const absl::string_view> allowed) {
  if (key.size() > 2 * kMaxNameLength) return "";
  std::string lower = absl::AsciiStrToLower(key);
  absl::string_view best;
  size_t best_distance = 3;  // suggest at distance <= 2 only
  for (absl::string_view name : allowed) {
    // A shortened or extended name (`buffer_limit` for `buffer_limit_bytes`) counts as close.
    bool prefix =
        lower.size() >= 4 && (absl::StartsWith(name, lower) || absl::StartsWith(lower, name));
    size_t d = lower == name || prefix ? 0 : EditDistance(lower, name);
    if (d < best_distance) {
      best = name;
      best_distance = d;
    }
  }
  return best;
}

enum class Overlap { kNone, kSame, kWildcard };

bool IsIpv4Any(const SocketAddress& a) { return !a.is_ipv6 && a.ip == "0.0.0.0"; }
bool IsIpv6Any(const SocketAddress& a) { return a.is_ipv6 && a.ip == "::"; }

// Whether two listening addresses would fight over a port. Port 0 never conflicts (each bind
// gets its own ephemeral port). A wildcard takes the port on every address of its family.
Overlap AddressesOverlap(const SocketAddress& a, const SocketAddress& b) {
  if (a.port == 0 || a.port != b.port) return Overlap::kNone;
  if (a.is_ipv6 == b.is_ipv6 && a.ip == b.ip) return Overlap::kSame;
  // IPv6 listeners are bound IPv6-only (network/address.cc): [::] takes every IPv6 address only.
  if (a.is_ipv6 && b.is_ipv6 && (IsIpv6Any(a) || IsIpv6Any(b))) return Overlap::kWildcard;
  if ((IsIpv4Any(a) && !b.is_ipv6) || (IsIpv4Any(b) && !a.is_ipv6)) return Overlap::kWildcard;
  return Overlap::kNone;
}

// Parses a port of 0..65535 in decimal; `why` says what is wrong otherwise.
bool ParsePort(absl::string_view text, uint16_t* port, std::string* why) {
  if (text.empty()) {
    *why = "missing port (expected ip:port, such as 127.0.0.1:8080)";
    return false;
  }
  for (char c : text) {
    if (!IsDigit(c)) {
      *why = absl::StrCat("port ", Quote(text), " is not a number");
      return false;
    }
  }
  uint32_t value = 0;
  for (char c : text) {
    value = value * 10 + (c - '0');
    if (value > 65535) break;
  }
  if (value > 65535) {
    *why = absl::StrCat("port ", text.size() > 10 ? Quote(text) : std::string(text),
                        " is out of range (0..65535)");
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Canonical text of an IP literal (so "::0001" and "::1" compare equal), or false.
bool CanonicalIp(absl::string_view text, int family, std::string* out) {
  std::string copy(text);  // inet_pton needs a NUL-terminated string
  if (copy.find('\0') != std::string::npos) return false;
  unsigned char bytes[sizeof(struct in6_addr)];
  if (inet_pton(family, copy.c_str(), bytes) != 1) return false;
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, buf, sizeof(buf)) == nullptr) return false;
  *out = buf;
  return true;
}

bool LooksLikeIpv4(absl::string_view host) {
  for (char c : host) {
    if (!IsDigit(c) && c != '.') return false;
  }
  return !host.empty();
}

// ParseSocketAddress with a reason on failure.
bool ParseSocketAddressWithReason(absl::string_view text, SocketAddress* out, std::string* why) {
  SocketAddress result;
  if (text.empty()) {
    *why = "expected ip:port, such as 127.0.0.1:8080";
    return false;
  }
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      *why = "missing \"]\" after the ipv6 address";
      return false;
    }
    absl::string_view host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (!CanonicalIp(host, AF_INET6, &result.ip)) {
      *why = absl::StrCat(Quote(host), " is not a valid ipv6 address");
      return false;
    }
    if (rest.empty()) {
      *why = "missing port (expected [ipv6]:port, such as [::1]:8080)";
      return false;
    }
    if (rest[0] != ':') {
      *why = "expected \":\" and a port after \"]\"";
      return false;
    }
    if (!ParsePort(rest.substr(1), &result.port, why)) return false;
    result.is_ipv6 = true;
    *out = std::move(result);
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon != absl::string_view::npos && text.find(':') != colon) {
    std::string ignored;
    *why = CanonicalIp(text, AF_INET6, &ignored)
               ? "missing port; write an ipv6 address in brackets with a port, such as [::1]:8080"
               : "an ipv6 address must be in brackets, such as [::1]:8080";
    return false;
  }
  absl::string_view host = colon == absl::string_view::npos ? text : text.substr(0, colon);
  if (host.empty()) {
    *why = "missing ip (use 0.0.0.0 to listen on every ipv4 address)";
    return false;
  }
  if (!CanonicalIp(host, AF_INET, &result.ip)) {
    *why = LooksLikeIpv4(host)
               ? absl::StrCat(Quote(host), " is not a valid ipv4 address")
               : std::string("hostnames are not allowed; use an ip literal such as 127.0.0.1");
    return false;
  }
  if (colon == absl::string_view::npos) {
    *why = "missing port (expected ip:port, such as 127.0.0.1:8080)";
    return false;
  }
  if (!ParsePort(text.substr(colon + 1), &result.port, why)) return false;
  *out = std::move(result);
  return true;
}

// Everything the cross-checks need from one listener, gathered while decoding it.
struct ListenerFacts {
  std::string path;
  std::string name;  // empty when missing or invalid
  int name_line = 0;
  bool address_ok = false;
  SocketAddress address;
  int address_line = 0;
  bool cluster_ok = false;
  std::string cluster;
  int cluster_line = 0;
  bool transparent = false;  // kind outbound or inbound: it has original destinations
  struct RouteRef {
    std::string path;
    std::string cluster;
    int line;
  };
  std::vector<RouteRef> route_clusters;
};

class Decoder {
 public:
  explicit Decoder(std::vector<ConfigError>* errors) : errors_(errors) {}

  void Decode(const Value& root, Config* config) {
    if (root.IsInvalid()) return;  // a syntax error, already reported
    if (root.IsNull()) {
      Error(0, "", "empty config; write {} to use every default");
      return;
    }
    if (!root.IsMap()) {
      Error(root.line, "", absl::StrCat("the top level must be a map, got ", root.Describe()));
      return;
    }
    CheckFields(root, "", kTopFields);
    if (const Value* v = Optional(root, "admin")) DecodeAdmin(*v, &config->admin);
    if (const Value* v = Optional(root, "workers")) {
      int64_t n;
      if (Int(*v, "workers", 0, kMaxWorkers, " (0 = automatic)", &n)) {
        config->workers = static_cast<uint32_t>(n);
      }
    }
    if (const Value* v = Optional(root, "zone")) Name(*v, "zone", &config->zone);
    if (const Value* v = Optional(root, "drain_timeout")) {
      Duration(*v, "drain_timeout", absl::ZeroDuration(), kMaxDrainTimeout, &config->drain_timeout);
    }
    if (const Value* v = Optional(root, "log_level")) {
      size_t index;
      if (Enum(*v, "log_level", "log level", kLogLevelNames, &index)) {
        config->log_level = static_cast<LogLevel>(index);
      }
    }
    if (const Value* v = Optional(root, "clusters")) {
      DecodeClusters(*v, &config->clusters);
    } else {
      clusters_complete_ = true;  // none defined: every reference dangles
    }
    if (const Value* v = Optional(root, "listeners")) DecodeListeners(*v, &config->listeners);
    CheckReferences();
    CheckListenerAddresses();
    CheckAdminAddress(config->admin);
    AddPassthroughClusters(config);
  }

 private:
  void Error(int line, std::string path, std::string message) {
    errors_->push_back(ConfigError{line, std::move(path), std::move(message)});
  }

  // Reports every key of `map` that is not in `allowed`, at the key's line.
  void CheckFields(const Value& map, const std::string& path,
                   absl::Span<const absl::string_view> allowed) {
    for (const MapEntry& e : map.entries) {
      if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
      std::string message = absl::StrCat("unknown field ", Quote(e.key));
      absl::string_view suggestion = Suggest(e.key, allowed);
      if (!suggestion.empty()) absl::StrAppend(&message, " (did you mean \"", suggestion, "\"?)");
      absl::StrAppend(&message, "; allowed fields: ", absl::StrJoin(allowed, ", "));
      Error(e.key_line, JoinPath(path, e.key), std::move(message));
    }
  }

  // Checks that `v` is a map with only allowed keys. False (reported unless already reported)
  // when it is not a map at all.
  bool Map(const Value& v, const std::string& path, absl::Span<const absl::string_view> allowed) {
    if (v.IsInvalid()) return false;
    if (!v.IsMap()) {
      Error(v.line, path, absl::StrCat("expected a map, got ", v.Describe()));
      return false;
    }
    CheckFields(v, path, allowed);
    return true;
  }

  bool List(const Value& v, const std::string& path) {
    if (v.IsInvalid()) return false;
    if (!v.IsSequence()) {
      Error(v.line, path, absl::StrCat("expected a list, got ", v.Describe()));
      return false;
    }
    return true;
  }

  // An optional field: nullptr when absent or null (null means "use the default").
  static const Value* Optional(const Value& map, absl::string_view key) {
    const MapEntry* e = map.Find(key);
    if (e == nullptr || e->value.IsNull()) return nullptr;
    return &e->value;
  }

  // A required field: reported at the map's line when absent. A present null is returned (the
  // type check then says "got null", at the field's own line).
  const Value* Required(const Value& map, const std::string& path, absl::string_view key,
                        absl::string_view why = "") {
    const MapEntry* e = map.Find(key);
    if (e == nullptr) {
      Error(map.line, JoinPath(path, key), absl::StrCat("missing required field", why));
      return nullptr;
    }
    return &e->value;
  }

  // `hint` follows a plain scalar that resolved to something else (`name: 123`); by default it
  // suggests quoting, which is what makes such a value a string.
  bool String(const Value& v, const std::string& path, absl::string_view expected, std::string* out,
              absl::string_view hint = " (quote it to make it a string)") {
    if (v.IsInvalid()) return false;
    if (v.IsScalar() && v.Resolve() == ScalarType::kString) {
      *out = v.scalar;
      return true;
    }
    std::string message = absl::StrCat("expected ", expected, ", got ", v.Describe());
    if (v.IsScalar()) absl::StrAppend(&message, hint);
    Error(v.line, path, std::move(message));
    return false;
  }

  bool Int(const Value& v, const std::string& path, int64_t min, int64_t max,
           absl::string_view note, int64_t* out) {
    if (v.IsInvalid()) return false;
    int64_t n;
    bool is_int = v.AsInt(&n);
    if (is_int && n >= min && n <= max) {
      *out = n;
      return true;
    }
    if (is_int || (v.IsScalar() && v.Resolve() == ScalarType::kInt)) {
      // An integer that is out of range, or too large to hold at all.
      Error(v.line, path,
            absl::StrCat(
                "must be between ", min, " and ", max, note, ", got ",
                v.scalar.size() > 40 ? absl::StrCat(v.scalar.substr(0, 40), "...") : v.scalar));
      return false;
    }
    std::string message = absl::StrCat("expected an integer, got ", v.Describe());
    int64_t ignored;
    Value unquoted = v;
    unquoted.quoted = false;
    if (v.IsScalar() && v.quoted && unquoted.AsInt(&ignored)) {
      absl::StrAppend(&message, " (remove the quotes to make it a number)");
    }
    Error(v.line, path, std::move(message));
    return false;
  }

  bool Duration(const Value& v, const std::string& path, absl::Duration min, absl::Duration max,
                absl::Duration* out) {
    std::string text;
    // A bare number has no unit; quoting it would not help, adding one would.
    std::string hint = v.IsScalar() && v.scalar.size() <= 20
                           ? absl::StrCat(" (add a unit, such as \"", v.scalar, "s\")")
                           : std::string(" (add a unit)");
    if (!String(v, path, "a duration", &text, hint)) return false;
    absl::Duration d;
    if (!config::ParseDuration(text, &d)) {
      Error(v.line, path,
            absl::StartsWith(text, "-")
                ? absl::StrCat("a duration cannot be negative, got ", Quote(text))
                : absl::StrCat("invalid duration ", Quote(text), "; ", kDurationRule));
      return false;
    }
    if (d < min || d > max) {
      Error(v.line, path,
            absl::StrCat("must be between ", DurationToString(min), " and ", DurationToString(max),
                         ", got ", text));
      return false;
    }
    *out = d;
    return true;
  }

  bool Address(const Value& v, const std::string& path, bool endpoint, SocketAddress* out) {
    if (v.IsSequence()) {
      // `address: [::1]:80` unquoted is a YAML flow list; say how to write it.
      Error(v.line, path,
            "expected an address such as \"127.0.0.1:8080\", got a list (quote ipv6 addresses: "
            "\"[::1]:8080\")");
      return false;
    }
    std::string text;
    if (!String(v, path, "an address such as \"127.0.0.1:8080\"", &text)) return false;
    std::string why;
    if (!ParseSocketAddressWithReason(text, out, &why)) {
      Error(v.line, path, absl::StrCat("invalid address ", Quote(text), ": ", why));
      return false;
    }
    if (endpoint && out->port == 0) {
      Error(v.line, path,
            absl::StrCat("invalid address ", Quote(text),
                         ": port 0 is not allowed for an endpoint (1..65535)"));
      return false;
    }
    return true;
  }

  bool Name(const Value& v, const std::string& path, std::string* out) {
    std::string text;
    if (!String(v, path, "a name", &text)) return false;
    bool ok = !text.empty() && text.size() <= kMaxNameLength;
    for (char c : text) ok = ok && IsNameChar(c);
    if (!ok) {
      Error(v.line, path, absl::StrCat("invalid name ", Quote(text), "; ", kNameRule));
      return false;
    }
    *out = std::move(text);
    return true;
  }

  bool Enum(const Value& v, const std::string& path, absl::string_view what,
            absl::Span<const absl::string_view> names, size_t* index) {
    std::string text;
    if (!String(v, path, absl::StrCat("a ", what), &text)) return false;
    auto it = std::find(names.begin(), names.end(), text);
    if (it == names.end()) {
      Error(v.line, path,
            absl::StrCat("unknown ", what, " ", Quote(text),
                         "; allowed values: ", absl::StrJoin(names, ", ")));
      return false;
    }
    *index = static_cast<size_t>(it - names.begin());
    return true;
  }

  void DecodeAdmin(const Value& v, Admin* admin) {
    if (!Map(v, "admin", kAdminFields)) {
      admin_unreadable_ = true;
      return;
    }
    if (const Value* a = Optional(v, "address")) {
      admin_address_line_ = a->line;
      admin_address_ok_ = Address(*a, "admin.address", /*endpoint=*/false, &admin->address);
    }
    if (const Value* t = Optional(v, "token")) {
      std::string token;
      if (String(*t, "admin.token", "a string", &token)) {
        bool visible = true;
        for (char c : token) visible = visible && c > 0x20 && c < 0x7f;
        // A token copied with a trailing newline (a `|` block) or a space would never match a
        // header, and the operator would be locked out without a clue.
        if (token.size() > kMaxTokenLength) {
          Error(t->line, "admin.token",
                absl::StrCat("is ", token.size(), " bytes long; the limit is ", kMaxTokenLength));
        } else if (!visible) {
          Error(t->line, "admin.token",
                "must contain only visible ascii characters (no spaces or line breaks)");
        } else {
          admin->token = std::move(token);
        }
      }
    }
    if (const Value* u = Optional(v, "unix_socket")) {
      std::string path;
      if (String(*u, "admin.unix_socket", "a path", &path)) {
        if (!absl::StartsWith(path, "/")) {
          Error(u->line, "admin.unix_socket",
                absl::StrCat("must be an absolute path, got ", Quote(path)));
        } else if (path.size() > kMaxUnixSocketPath) {
          Error(u->line, "admin.unix_socket",
                absl::StrCat("is ", path.size(), " bytes long; a unix socket path is at most ",
                             kMaxUnixSocketPath, " bytes"));
        } else if (!std::all_of(path.begin(), path.end(),
                                [](char c) { return c >= 0x20 && c < 0x7f; })) {
          // Printable ASCII only: keeps the path safe to print, log and render as JSON.
          Error(u->line, "admin.unix_socket",
                absl::StrCat("must be printable ascii, got ", Quote(path)));
        } else {
          admin->unix_socket = std::move(path);
        }
      }
    }
  }

  void DecodeListeners(const Value& v, std::vector<Listener>* listeners) {
    if (!List(v, "listeners")) return;
    absl::flat_hash_map<std::string, int> first_line_of_name;
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Value& item = v.items[i];
      ListenerFacts facts;
      facts.path = absl::StrCat("listeners[", i, "]");
      Listener listener;
      listener.line = item.line;
      if (Map(item, facts.path, kListenerFields)) DecodeListener(item, &listener, &facts);
      if (!facts.name.empty()) {
        auto [it, inserted] = first_line_of_name.try_emplace(facts.name, facts.name_line);
        if (!inserted) {
          Error(facts.name_line, JoinPath(facts.path, "name"),
                absl::StrCat("duplicate listener name ", Quote(facts.name),
                             " (first defined on line ", it->second, ")"));
        }
      }
      listener_facts_.push_back(std::move(facts));
      listeners->push_back(std::move(listener));
    }
  }

  void DecodeListener(const Value& item, Listener* listener, ListenerFacts* facts) {
    const std::string& path = facts->path;
    if (const Value* n = Required(item, path, "name")) {
      facts->name_line = n->line;
      if (Name(*n, JoinPath(path, "name"), &listener->name)) facts->name = listener->name;
    }
    if (const Value* a = Required(item, path, "address")) {
      facts->address_line = a->line;
      facts->address_ok =
          Address(*a, JoinPath(path, "address"), /*endpoint=*/false, &listener->address);
      facts->address = listener->address;
    }
    bool kind_ok = false;
    if (const Value* k = Required(item, path, "kind")) {
      size_t index;
      kind_ok = Enum(*k, JoinPath(path, "kind"), "listener kind", kListenerKindNames, &index);
      if (kind_ok) listener->kind = static_cast<ListenerKind>(index);
    }
    // A tcp listener needs a cluster; an http one routes; a transparent one may have either (a
    // cluster for what is not HTTP, else the original destination). With a bad kind, a missing
    // cluster is not worth a second message.
    const Value* c = nullptr;
    auto fields = absl::Span<const absl::string_view>(kListenerFields);
    auto reject = [&](absl::Span<const absl::string_view> which, absl::string_view why) {
      for (absl::string_view f : which) {
        if (const MapEntry* e = item.Find(f))
          Error(e->key_line, JoinPath(path, f), std::string(why));
      }
    };
    auto transparent_only = fields.subspan(fields.size() - kTransparentOnlyListenerFields);
    if (kind_ok && listener->kind == ListenerKind::kTcp) {
      c = Required(item, path, "cluster", " (a tcp listener forwards every connection to it)");
      reject(
          fields.subspan(kFirstHttpOnlyListenerField, fields.size() - kFirstHttpOnlyListenerField -
                                                          kTransparentOnlyListenerFields),
          "applies to http listeners only (kind: http)");
      reject(transparent_only, "applies to inbound and outbound listeners only");
    } else if (kind_ok && listener->kind == ListenerKind::kHttp) {
      if (const MapEntry* e = item.Find("cluster")) {
        Error(e->key_line, JoinPath(path, "cluster"),
              "an http listener sends requests where its routes say; give each route a cluster");
      }
      reject(transparent_only, "applies to inbound and outbound listeners only");
      DecodeHttpListener(item, listener, facts, /*routes_required=*/true);
    } else if (kind_ok) {
      c = Optional(item, "cluster");
      facts->transparent = true;
      if (const MapEntry* e = item.Find("direction")) {
        Error(e->key_line, JoinPath(path, "direction"),
              absl::StrCat("is implied by kind: ", ListenerKindName(listener->kind)));
      }
      DecodeHttpListener(item, listener, facts, /*routes_required=*/false);
      listener->direction =
          listener->kind == ListenerKind::kInbound ? Direction::kInbound : Direction::kOutbound;
      DecodeDetection(item, path, listener, facts);
    } else {
      c = Optional(item, "cluster");
    }
    if (const Value* t = Optional(item, "tls")) {
      std::string tpath = JoinPath(path, "tls");
      if (kind_ok && listener->kind == ListenerKind::kOutbound) {
        Error(t->line, tpath,
              "an outbound listener does not terminate TLS: its clusters' tls originates it");
      } else if (Map(*t, tpath, kTlsFields)) {
        DecodeTls(*t, tpath, /*listener=*/true, &listener->tls);
        const bool inbound = kind_ok && listener->kind == ListenerKind::kInbound;
        if (const Value* m = Optional(*t, "mode")) {
          std::string mpath = JoinPath(tpath, "mode");
          if (!inbound) {
            Error(m->line, mpath,
                  "applies to inbound listeners only (an http or tcp listener with tls takes "
                  "TLS only)");
          } else {
            size_t index;
            if (Enum(*m, mpath, "TLS mode", kTlsModeNames, &index)) {
              listener->tls.mode = static_cast<TlsMode>(index);
            }
          }
        }
        if (inbound && listener->tls.ca.empty() && !t->Find("ca")) {
          Error(t->line, tpath,
                "an inbound listener's tls is the mesh's mutual TLS: it needs ca (the trust "
                "bundle callers are checked with)");
        }
      }
    }
    if (c != nullptr && Name(*c, JoinPath(path, "cluster"), &listener->cluster)) {
      facts->cluster_ok = true;
      facts->cluster = listener->cluster;
      facts->cluster_line = c->line;
    }
    if (const Value* b = Optional(item, "buffer_limit_bytes")) {
      int64_t n;
      if (Int(*b, JoinPath(path, "buffer_limit_bytes"), kMinBufferLimitBytes, kMaxBufferLimitBytes,
              "", &n)) {
        listener->buffer_limit_bytes = static_cast<uint32_t>(n);
      }
    }
  }

  // A number from 0 to 1.
  bool Ratio(const Value& v, const std::string& path, double* out) {
    if (v.IsInvalid()) return false;
    ScalarType t = v.IsScalar() && !v.quoted ? v.Resolve() : ScalarType::kString;
    double d;
    if ((t == ScalarType::kInt || t == ScalarType::kFloat) && absl::SimpleAtod(v.scalar, &d)) {
      if (d >= 0 && d <= 1) {
        *out = d;
        return true;
      }
      Error(v.line, path, absl::StrCat("must be between 0 and 1, got ", v.scalar));
      return false;
    }
    Error(v.line, path, absl::StrCat("expected a number between 0 and 1, got ", v.Describe()));
    return false;
  }

  bool Bool(const Value& v, const std::string& path, bool* out) {
    if (v.IsInvalid()) return false;
    if (v.IsScalar() && !v.quoted && v.AsBool(out)) return true;
    Error(v.line, path, absl::StrCat("expected true or false, got ", v.Describe()));
    return false;
  }

  // A listener's tls (termination) or a cluster's (origination).
  void DecodeTls(const Value& v, const std::string& path, bool listener, Tls* tls) {
    tls->enabled = true;
    auto file = [&](absl::string_view key, std::string* out) {
      const Value* f = Optional(v, key);
      if (f == nullptr) return;
      std::string fpath = JoinPath(path, key);
      if (String(*f, fpath, "a file path", out) && out->empty()) {
        Error(f->line, fpath, "must not be empty");
      }
    };
    file("cert", &tls->cert);
    file("key", &tls->key);
    file("ca", &tls->ca);
    if (tls->cert.empty() != tls->key.empty()) {
      Error(v.line, path, "cert and key go together: give both or neither");
    }
    if (listener) {
      if (tls->cert.empty() && !v.Find("cert")) {
        Error(v.line, path, "a TLS listener needs cert and key (its certificate)");
      }
      for (absl::string_view f : {"sni", "spiffe_id", "trust_domain"}) {
        if (const MapEntry* e = v.Find(f)) {
          Error(e->key_line, JoinPath(path, f), "applies to a cluster's tls only");
        }
      }
      if (const Value* t = Optional(v, "handshake_timeout")) {
        Duration(*t, JoinPath(path, "handshake_timeout"), absl::Milliseconds(1), absl::Minutes(5),
                 &tls->handshake_timeout);
      }
      if (const Value* f = Optional(v, "forward_client_cert")) {
        Bool(*f, JoinPath(path, "forward_client_cert"), &tls->forward_client_cert);
      }
      return;
    }
    if (const MapEntry* e = v.Find("handshake_timeout")) {
      Error(e->key_line, JoinPath(path, "handshake_timeout"),
            "applies to a listener's tls only (a cluster's handshake is within connect_timeout)");
    }
    for (absl::string_view f : {"forward_client_cert", "mode"}) {
      if (const MapEntry* e = v.Find(f)) {
        Error(e->key_line, JoinPath(path, f), "applies to a listener's tls only");
      }
    }
    if (tls->ca.empty() && !v.Find("ca")) {
      Error(v.line, path,
            "a cluster's tls needs ca (the trust bundle its endpoints are checked "
            "with)");
    }
    if (const Value* s = Optional(v, "sni")) {
      if (String(*s, JoinPath(path, "sni"), "a server name", &tls->sni) && tls->sni.empty()) {
        Error(s->line, JoinPath(path, "sni"), "must not be empty");
      }
    } else if (!v.Find("spiffe_id") && !v.Find("trust_domain")) {
      Error(v.line, path,
            "say who the endpoints are: spiffe_id or trust_domain (mesh workloads, checked by "
            "SPIFFE ID) or sni (a TLS server, checked by host name)");
    }
    if (const Value* s = Optional(v, "spiffe_id")) {
      std::string spath = JoinPath(path, "spiffe_id");
      if (String(*s, spath, "a SPIFFE ID", &tls->spiffe_id)) {
        if (absl::StatusOr<tls::SpiffeId> id = tls::ParseSpiffeId(tls->spiffe_id); !id.ok()) {
          Error(s->line, spath, std::string(id.status().message()));
        }
      }
    }
    if (const Value* t = Optional(v, "trust_domain")) {
      std::string tpath = JoinPath(path, "trust_domain");
      if (String(*t, tpath, "a trust domain", &tls->trust_domain)) {
        if (absl::Status s = tls::CheckTrustDomain(tls->trust_domain); !s.ok()) {
          Error(t->line, tpath, std::string(s.message()));
        }
        if (v.Find("spiffe_id") != nullptr) {
          Error(t->line, tpath,
                "give spiffe_id (one identity) or trust_domain (any of it), not both");
        }
      }
    }
  }

  void DecodeDetection(const Value& item, const std::string& path, Listener* listener,
                       ListenerFacts* facts) {
    if (const Value* p = Optional(item, "passthrough")) {
      Bool(*p, JoinPath(path, "passthrough"), &listener->passthrough);
    }
    if (const Value* a = Optional(item, "app_port")) {
      int64_t n;
      if (listener->kind != ListenerKind::kInbound) {
        Error(a->line, JoinPath(path, "app_port"), "applies to inbound listeners only");
      } else if (Int(*a, JoinPath(path, "app_port"), 1, 65535, "", &n)) {
        listener->app_port = static_cast<uint16_t>(n);
      }
    }
    if (const Value* t = Optional(item, "tls_routes")) {
      std::string tpath = JoinPath(path, "tls_routes");
      if (List(*t, tpath)) {
        for (size_t i = 0; i < t->items.size(); ++i) {
          const Value& ri = t->items[i];
          std::string ipath = absl::StrCat(tpath, "[", i, "]");
          if (!Map(ri, ipath, kTlsRouteFields)) continue;
          Listener::TlsRoute route;
          const Value* alpn = Optional(ri, "alpn");
          if (alpn != nullptr) {
            std::string apath = JoinPath(ipath, "alpn");
            if (List(*alpn, apath)) {
              for (size_t k = 0; k < alpn->items.size(); ++k) {
                std::string one;
                std::string kpath = absl::StrCat(apath, "[", k, "]");
                if (!String(alpn->items[k], kpath, "a protocol name", &one)) continue;
                if (one.empty() || one.size() > 255) {
                  Error(alpn->items[k].line, kpath,
                        "an ALPN protocol name is 1 to 255 bytes (such as h2 or http/1.1)");
                  continue;
                }
                route.alpn.push_back(std::move(one));
              }
              if (alpn->items.empty()) {
                Error(alpn->line, apath, "must list at least one protocol (or leave alpn out)");
              }
            }
          }
          // A route matches on the server name, the protocols offered, or both.
          const Value* sni = alpn != nullptr ? Optional(ri, "sni")
                                             : Required(ri, ipath, "sni", " (or alpn, or both)");
          if (sni != nullptr) {
            std::string spath = JoinPath(ipath, "sni");
            if (String(*sni, spath, "a server name", &route.sni)) {
              absl::string_view name = absl::StripPrefix(route.sni, "*.");
              bool ok = !name.empty() && name.size() <= 253 &&
                        std::all_of(name.begin(), name.end(), [](char c) {
                          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                 c == '.';
                        });
              if (!ok) {
                Error(sni->line, spath,
                      absl::StrCat("invalid server name ", Quote(route.sni),
                                   "; a host name, or *. and one"));
              }
            }
          }
          if (const Value* c = Required(ri, ipath, "cluster")) {
            if (Name(*c, JoinPath(ipath, "cluster"), &route.cluster)) {
              facts->route_clusters.push_back({JoinPath(ipath, "cluster"), route.cluster, c->line});
            }
          }
          listener->tls_routes.push_back(std::move(route));
        }
      }
    }
    if (const Value* t = Optional(item, "detect_timeout")) {
      Duration(*t, JoinPath(path, "detect_timeout"), absl::Milliseconds(1), absl::Seconds(10),
               &listener->detect_timeout);
    }
    if (const Value* p = Optional(item, "server_first_ports")) {
      std::string ppath = JoinPath(path, "server_first_ports");
      if (!List(*p, ppath)) return;
      listener->server_first_ports.clear();
      for (size_t i = 0; i < p->items.size(); ++i) {
        int64_t n;
        if (Int(p->items[i], absl::StrCat(ppath, "[", i, "]"), 1, 65535, "", &n)) {
          listener->server_first_ports.push_back(static_cast<uint16_t>(n));
        }
      }
    }
  }

  void DecodeHttpListener(const Value& item, Listener* listener, ListenerFacts* facts,
                          bool routes_required) {
    const std::string& path = facts->path;
    if (const Value* l = Optional(item, "rate_limit")) {
      listener->has_rate_limit = true;
      DecodeRateLimit(*l, JoinPath(path, "rate_limit"), &listener->rate_limit);
    }
    if (const Value* d = Optional(item, "direction")) {
      size_t index;
      if (Enum(*d, JoinPath(path, "direction"), "direction", kDirectionNames, &index)) {
        listener->direction = static_cast<Direction>(index);
      }
    }
    if (const Value* t = Optional(item, "request_header_timeout")) {
      Duration(*t, JoinPath(path, "request_header_timeout"), absl::Milliseconds(1), kMaxHttpTimeout,
               &listener->request_header_timeout);
    }
    if (const Value* t = Optional(item, "idle_timeout")) {
      Duration(*t, JoinPath(path, "idle_timeout"), absl::Milliseconds(1), kMaxHttpTimeout,
               &listener->idle_timeout);
    }
    int64_t n;
    if (const Value* b = Optional(item, "max_request_header_bytes")) {
      if (Int(*b, JoinPath(path, "max_request_header_bytes"), 1024, kMaxRequestHeaderBytes, "",
              &n)) {
        listener->max_request_header_bytes = static_cast<uint32_t>(n);
      }
    }
    if (const Value* b = Optional(item, "max_request_headers")) {
      if (Int(*b, JoinPath(path, "max_request_headers"), 1, kMaxRequestHeaders, "", &n)) {
        listener->max_request_headers = static_cast<uint32_t>(n);
      }
    }
    if (const Value* b = Optional(item, "create_trace_context")) {
      Bool(*b, JoinPath(path, "create_trace_context"), &listener->create_trace_context);
    }
    if (const Value* b = Optional(item, "forward_normalized_path")) {
      Bool(*b, JoinPath(path, "forward_normalized_path"), &listener->forward_normalized_path);
    }
    if (const Value* t = Optional(item, "stream_idle_timeout")) {
      Duration(*t, JoinPath(path, "stream_idle_timeout"), absl::ZeroDuration(), kMaxHttpTimeout,
               &listener->stream_idle_timeout);
    }
    if (const Value* b = Optional(item, "http2_max_concurrent_streams")) {
      if (Int(*b, JoinPath(path, "http2_max_concurrent_streams"), 1, kMaxHttp2Streams, "", &n)) {
        listener->http2_max_concurrent_streams = static_cast<uint32_t>(n);
      }
    }
    if (const Value* b = Optional(item, "http2_reset_burst")) {
      if (Int(*b, JoinPath(path, "http2_reset_burst"), 1, kMaxHttp2Resets, "", &n)) {
        listener->http2_reset_burst = static_cast<uint32_t>(n);
      }
    }
    if (const Value* b = Optional(item, "http2_reset_rate")) {
      if (Int(*b, JoinPath(path, "http2_reset_rate"), 1, kMaxHttp2Resets, "", &n)) {
        listener->http2_reset_rate = static_cast<uint32_t>(n);
      }
    }
    const Value* r = routes_required ? Required(item, path, "routes",
                                                " (an http listener needs at least one route)")
                                     : Optional(item, "routes");
    if (r == nullptr) return;
    std::string rpath = JoinPath(path, "routes");
    if (!r->IsNull() && !List(*r, rpath)) return;
    if (r->IsNull() || r->items.empty()) {
      Error(r->line, rpath, "must list at least one route");
      return;
    }
    for (size_t i = 0; i < r->items.size(); ++i) {
      const Value& ri = r->items[i];
      std::string ipath = absl::StrCat(rpath, "[", i, "]");
      Route route;
      route.line = ri.line;
      if (Map(ri, ipath, kRouteFields)) DecodeRoute(ri, ipath, &route, facts);
      listener->routes.push_back(std::move(route));
    }
  }

  void DecodeRoute(const Value& v, const std::string& path, Route* route, ListenerFacts* facts) {
    if (const Value* n = Optional(v, "name")) Name(*n, JoinPath(path, "name"), &route->name);
    if (const Value* c = Required(v, path, "cluster")) {
      if (Name(*c, JoinPath(path, "cluster"), &route->cluster)) {
        facts->route_clusters.push_back({JoinPath(path, "cluster"), route->cluster, c->line});
      }
    }
    if (const Value* t = Optional(v, "timeout")) {
      Duration(*t, JoinPath(path, "timeout"), absl::ZeroDuration(), kMaxHttpTimeout,
               &route->timeout);
    }
    if (const Value* m = Optional(v, "match")) {
      std::string mpath = JoinPath(path, "match");
      if (Map(*m, mpath, kMatchFields)) DecodeMatch(*m, mpath, &route->match);
    }
    if (const Value* h = Optional(v, "request_headers_to_add")) {
      HeaderValues(*h, JoinPath(path, "request_headers_to_add"), &route->request_headers_to_add);
    }
    if (const Value* h = Optional(v, "request_headers_to_remove")) {
      HeaderNames(*h, JoinPath(path, "request_headers_to_remove"),
                  &route->request_headers_to_remove);
    }
    if (const Value* h = Optional(v, "response_headers_to_add")) {
      HeaderValues(*h, JoinPath(path, "response_headers_to_add"), &route->response_headers_to_add);
    }
    if (const Value* h = Optional(v, "response_headers_to_remove")) {
      HeaderNames(*h, JoinPath(path, "response_headers_to_remove"),
                  &route->response_headers_to_remove);
    }
    if (const Value* b = Optional(v, "idempotent")) {
      Bool(*b, JoinPath(path, "idempotent"), &route->idempotent);
    }
    if (const Value* r = Optional(v, "retries")) {
      std::string rpath = JoinPath(path, "retries");
      route->has_retries = true;
      if (Map(*r, rpath, kRetryFields)) DecodeRetries(*r, rpath, &route->retries);
    }
    if (const Value* f = Optional(v, "fallback")) {
      std::string fpath = JoinPath(path, "fallback");
      route->has_fallback = true;
      if (Map(*f, fpath, kFallbackFields)) DecodeFallback(*f, fpath, &route->fallback);
    }
    if (const Value* l = Optional(v, "rate_limit")) {
      route->has_rate_limit = true;
      DecodeRateLimit(*l, JoinPath(path, "rate_limit"), &route->rate_limit);
    }
    if (const Value* a = Optional(v, "authorization")) {
      std::string apath = JoinPath(path, "authorization");
      route->has_authorization = true;
      if (Map(*a, apath, kAuthorizationFields)) {
        if (const Value* l = Optional(*a, "allow")) {
          DecodeAuthzRules(*l, JoinPath(apath, "allow"), &route->authorization.allow);
        }
        if (const Value* l = Optional(*a, "deny")) {
          DecodeAuthzRules(*l, JoinPath(apath, "deny"), &route->authorization.deny);
        }
        if (a->Find("allow") == nullptr && a->Find("deny") == nullptr) {
          Error(a->line, apath, "give allow or deny rules (or leave authorization out)");
        }
      }
    }
  }

  void DecodeAuthzRules(const Value& v, const std::string& path, std::vector<AuthzRule>* out) {
    if (!List(v, path)) return;
    // An empty allow list would admit everyone (no allow rules: whoever is not denied).
    if (v.items.empty()) Error(v.line, path, "must list at least one rule (or leave it out)");
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Value& item = v.items[i];
      std::string rpath = absl::StrCat(path, "[", i, "]");
      if (!Map(item, rpath, kAuthzRuleFields)) continue;
      AuthzRule rule;
      auto strings = [&](absl::string_view key, std::vector<std::string>* into, auto check) {
        const Value* l = Optional(item, key);
        if (l == nullptr) return;
        std::string lpath = JoinPath(rpath, key);
        if (!List(*l, lpath)) return;
        if (l->items.empty()) Error(l->line, lpath, "must list at least one (or leave it out)");
        for (size_t k = 0; k < l->items.size(); ++k) {
          std::string s;
          std::string kpath = absl::StrCat(lpath, "[", k, "]");
          if (!String(l->items[k], kpath, "a string", &s)) continue;
          if (std::string why = check(s); !why.empty()) {
            Error(l->items[k].line, kpath, why);
            continue;
          }
          into->push_back(std::move(s));
        }
      };
      strings("peers", &rule.peers, [](const std::string& p) -> std::string {
        if (p == "*") return "";
        if (absl::StartsWith(p, "ns/")) {
          absl::string_view ns = absl::string_view(p).substr(3);
          if (absl::ConsumeSuffix(&ns, "/*") && !ns.empty() &&
              ns.find('/') == absl::string_view::npos) {
            return "";
          }
          return absl::StrCat("expected ns/NAMESPACE/*, got ", Quote(p));
        }
        absl::string_view id = p;
        absl::ConsumeSuffix(&id, "/*");
        if (absl::StatusOr<tls::SpiffeId> parsed = tls::ParseSpiffeId(id); !parsed.ok()) {
          return absl::StrCat(
              "expected a SPIFFE ID (optionally ending in /*), ns/NAMESPACE/* or "
              "*: ",
              parsed.status().message());
        }
        return "";
      });
      strings("methods", &rule.methods, [](const std::string& m) -> std::string {
        bool ok = !m.empty() &&
                  std::all_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
        return ok ? "" : absl::StrCat("expected an upper-case method such as GET, got ", Quote(m));
      });
      strings("paths", &rule.paths, [](const std::string& p) -> std::string {
        return absl::StartsWith(p, "/") ? "" : absl::StrCat("a path starts with /, got ", Quote(p));
      });
      if (item.Find("peers") == nullptr && item.Find("methods") == nullptr &&
          item.Find("paths") == nullptr) {
        Error(item.line, rpath, "a rule needs peers, methods or paths");
      }
      out->push_back(std::move(rule));
    }
  }

  // `{header: NAME}` (lower-cased into *header) or `{client_address: true}` (*client_address):
  // exactly one. False when the map itself is malformed (reported).
  bool RequestKey(const Value& v, const std::string& path, absl::string_view field,
                  std::string* header, bool* client_address) {
    if (!Map(v, path, kRequestKeyFields)) return false;
    const Value* h = Optional(v, "header");
    const Value* c = Optional(v, "client_address");
    if ((h == nullptr) == (c == nullptr)) {
      Error(v.line, path, "give exactly one of header and client_address");
    } else if (h != nullptr) {
      if (HeaderName(*h, JoinPath(path, "header"), header)) {
        absl::AsciiStrToLower(header);  // field names are case-insensitive
      }
    } else if (Bool(*c, JoinPath(path, "client_address"), client_address) && !*client_address) {
      Error(c->line, JoinPath(path, "client_address"),
            absl::StrCat("only true is meaningful here (or leave ", field, " out)"));
    }
    return true;
  }

  void DecodeRateLimit(const Value& v, const std::string& path, RateLimit* r) {
    if (!Map(v, path, kRateLimitFields)) return;
    if (const Value* rps = Required(v, path, "requests_per_second")) {
      std::string rpath = JoinPath(path, "requests_per_second");
      ScalarType t = rps->IsScalar() && !rps->quoted ? rps->Resolve() : ScalarType::kString;
      double d;
      if ((t == ScalarType::kInt || t == ScalarType::kFloat) && absl::SimpleAtod(rps->scalar, &d)) {
        // At least one per 1000 s: a bucket's arithmetic stays in range (burst x interval).
        if (d >= 0.001 && d <= kMaxRequestsPerSecond) {
          r->requests_per_second = d;
        } else {
          Error(rps->line, rpath,
                absl::StrCat("must be between 0.001 and 1000000000, got ", rps->scalar));
        }
      } else if (!rps->IsInvalid()) {
        Error(rps->line, rpath, absl::StrCat("expected a number, got ", rps->Describe()));
      }
    }
    if (const Value* b = Optional(v, "burst")) {
      int64_t n;
      if (Int(*b, JoinPath(path, "burst"), 1, kMaxBreakerCount, "", &n)) {
        r->burst = static_cast<uint32_t>(n);
      }
    }
    if (r->burst == 0) {  // a second's worth, at least one
      r->burst = static_cast<uint32_t>(
          std::clamp<double>(std::ceil(r->requests_per_second), 1, kMaxBreakerCount));
    }
    if (const Value* m = Optional(v, "max_keys")) {
      int64_t n;
      if (Int(*m, JoinPath(path, "max_keys"), 1, kMaxBreakerCount, "", &n)) {
        r->max_keys = static_cast<uint32_t>(n);
      }
    }
    if (const Value* k = Optional(v, "key")) {
      RequestKey(*k, JoinPath(path, "key"), "key", &r->key_header, &r->key_client_address);
    }
  }

  void DecodeHealthCheck(const Value& v, const std::string& path, HealthCheck* h) {
    h->enabled = true;
    if (const Value* p = Optional(v, "path")) {
      std::string ppath = JoinPath(path, "path");
      if (String(*p, ppath, "a path", &h->path)) {
        bool ok =
            absl::StartsWith(h->path, "/") &&
            std::all_of(h->path.begin(), h->path.end(), [](char c) { return c > ' ' && c < 0x7f; });
        if (!ok) Error(p->line, ppath, "must start with / and hold no spaces or control bytes");
      }
    }
    if (const Value* s = Optional(v, "host")) {
      std::string spath = JoinPath(path, "host");
      if (String(*s, spath, "a host", &h->host)) {
        bool ok = !h->host.empty() && std::all_of(h->host.begin(), h->host.end(),
                                                  [](char c) { return c > ' ' && c < 0x7f; });
        if (!ok) Error(s->line, spath, "must be a non-empty host, without spaces");
      }
    }
    if (const Value* i = Optional(v, "interval")) {
      Duration(*i, JoinPath(path, "interval"), absl::Milliseconds(10), kMaxHttpTimeout,
               &h->interval);
    }
    if (const Value* t = Optional(v, "timeout")) {
      Duration(*t, JoinPath(path, "timeout"), absl::Milliseconds(1), kMaxHttpTimeout, &h->timeout);
    }
    for (auto [key, out] : {std::pair{"healthy_threshold", &h->healthy_threshold},
                            std::pair{"unhealthy_threshold", &h->unhealthy_threshold}}) {
      if (const Value* n = Optional(v, key)) {
        int64_t x;
        if (Int(*n, JoinPath(path, key), 1, 1000, "", &x)) *out = static_cast<uint32_t>(x);
      }
    }
  }

  void DecodeFallback(const Value& v, const std::string& path, FallbackResponse* f) {
    if (const Value* s = Optional(v, "status")) {
      int64_t n;
      if (Int(*s, JoinPath(path, "status"), 200, 599, "", &n)) f->status = static_cast<uint16_t>(n);
    }
    if (const Value* h = Optional(v, "headers")) {
      HeaderValues(*h, JoinPath(path, "headers"), &f->headers);
    }
    if (const Value* b = Optional(v, "body")) {
      String(*b, JoinPath(path, "body"), "a string", &f->body);
    }
  }

  void DecodeBreaker(const Value& v, const std::string& path, CircuitBreaker* b) {
    b->enabled = true;
    auto count = [&](absl::string_view key, int64_t min, absl::string_view note, uint32_t* out) {
      if (const Value* c = Optional(v, key)) {
        int64_t n;
        if (Int(*c, JoinPath(path, key), min, kMaxBreakerCount, note, &n)) {
          *out = static_cast<uint32_t>(n);
        }
      }
    };
    auto percent = [&](absl::string_view key, uint32_t* out) {
      if (const Value* c = Optional(v, key)) {
        int64_t n;
        if (Int(*c, JoinPath(path, key), 0, 100, " (percent)", &n)) *out = static_cast<uint32_t>(n);
      }
    };
    count("consecutive_failures", 0, " (0: not by count)", &b->consecutive_failures);
    count("min_requests", 1, "", &b->min_requests);
    count("half_open_requests", 1, "", &b->half_open_requests);
    percent("max_ejection_percent", &b->max_ejection_percent);
    if (const Value* r = Optional(v, "failure_ratio")) {
      Ratio(*r, JoinPath(path, "failure_ratio"), &b->failure_ratio);
    }
    if (const Value* w = Optional(v, "window")) {
      Duration(*w, JoinPath(path, "window"), absl::Milliseconds(1), kMaxHttpTimeout, &b->window);
    }
    const Value* open = Optional(v, "open_for");
    const Value* max_open = Optional(v, "max_open_for");
    bool ok = true;
    if (open != nullptr) {
      ok &= Duration(*open, JoinPath(path, "open_for"), absl::Milliseconds(1), kMaxHttpTimeout,
                     &b->open_for);
    }
    if (max_open != nullptr) {
      ok &= Duration(*max_open, JoinPath(path, "max_open_for"), absl::Milliseconds(1),
                     kMaxHttpTimeout, &b->max_open_for);
    }
    if (ok && b->max_open_for < b->open_for) {
      if (max_open == nullptr) {
        b->max_open_for = b->open_for;  // only open_for given, and above the default cap
      } else {
        Error(max_open->line, JoinPath(path, "max_open_for"),
              absl::StrCat("must not be below open_for (", DurationToString(b->open_for), ")"));
      }
    }
    if (const Value* f = Optional(v, "failure_on")) {
      std::string fpath = JoinPath(path, "failure_on");
      if (List(*f, fpath)) {
        b->failure_on = 0;
        for (size_t i = 0; i < f->items.size(); ++i) {
          size_t index;
          if (Enum(f->items[i], absl::StrCat(fpath, "[", i, "]"), "failure class",
                   kBreakerFailureNames, &index)) {
            b->failure_on |= 1u << index;
          }
        }
      }
    }
    if (b->consecutive_failures == 0 && b->failure_ratio == 0) {
      Error(v.line, path,
            "set consecutive_failures or failure_ratio (or leave circuit_breaker out)");
    }
  }

  void DecodeRetries(const Value& v, const std::string& path, RetryPolicy* p) {
    if (const Value* a = Optional(v, "attempts")) {
      int64_t n;
      if (Int(*a, JoinPath(path, "attempts"), 1, kMaxRetryAttempts, " (the first one included)",
              &n)) {
        p->attempts = static_cast<uint32_t>(n);
      }
    }
    if (const Value* r = Optional(v, "retry_on")) DecodeRetryOn(*r, JoinPath(path, "retry_on"), p);
    if (const Value* t = Optional(v, "per_try_timeout")) {
      Duration(*t, JoinPath(path, "per_try_timeout"), absl::ZeroDuration(), kMaxHttpTimeout,
               &p->per_try_timeout);
    }
    if (const Value* b = Optional(v, "buffer_limit_bytes")) {
      int64_t n;
      if (Int(*b, JoinPath(path, "buffer_limit_bytes"), 0, kMaxRetryBufferBytes, "", &n)) {
        p->buffer_limit_bytes = static_cast<uint32_t>(n);
      }
    }
    if (const Value* b = Optional(v, "backoff")) {
      std::string bpath = JoinPath(path, "backoff");
      if (!Map(*b, bpath, kBackoffFields)) return;
      const Value* base = Optional(*b, "base");
      const Value* max = Optional(*b, "max");
      bool ok = true;
      if (base != nullptr) {
        ok &= Duration(*base, JoinPath(bpath, "base"), absl::Milliseconds(1), kMaxBackoff,
                       &p->backoff_base);
      }
      if (max != nullptr) {
        ok &= Duration(*max, JoinPath(bpath, "max"), absl::Milliseconds(1), kMaxBackoff,
                       &p->backoff_max);
      }
      if (ok && p->backoff_max < p->backoff_base) {
        const Value& at = max != nullptr ? *max : *base;
        Error(at.line, JoinPath(bpath, max != nullptr ? "max" : "base"),
              absl::StrCat("max (", DurationToString(p->backoff_max), ") must not be below base (",
                           DurationToString(p->backoff_base), ")"));
      }
    }
  }

  void DecodeRetryOn(const Value& v, const std::string& path, RetryPolicy* p) {
    if (!List(v, path)) return;
    p->retry_on = 0;
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Value& item = v.items[i];
      std::string ipath = absl::StrCat(path, "[", i, "]");
      int64_t code;
      if (item.AsInt(&code)) {
        if (code < 400 || code > 599) {
          Error(item.line, ipath,
                absl::StrCat("a retried status must be between 400 and 599, got ", code));
          continue;
        }
        p->status_codes.push_back(static_cast<uint16_t>(code));
        continue;
      }
      std::string name;
      if (!String(item, ipath, "a retry condition", &name)) continue;
      auto named = std::find(std::begin(kRetryOnNames), std::end(kRetryOnNames), name);
      if (named != std::end(kRetryOnNames)) {
        p->retry_on |= 1u << (named - std::begin(kRetryOnNames));
        continue;
      }
      auto grpc = std::find_if(std::begin(kRetryGrpcStatuses), std::end(kRetryGrpcStatuses),
                               [&](const auto& g) { return g.first == name; });
      if (grpc != std::end(kRetryGrpcStatuses)) {
        p->grpc_statuses |= 1u << grpc->second;
        continue;
      }
      std::vector<absl::string_view> all(std::begin(kRetryOnNames), std::end(kRetryOnNames));
      for (const auto& g : kRetryGrpcStatuses) all.push_back(g.first);
      Error(item.line, ipath,
            absl::StrCat("unknown retry condition ", Quote(name), "; allowed values: ",
                         absl::StrJoin(all, ", "), ", or a status code 400-599"));
    }
  }

  void DecodeMatch(const Value& m, const std::string& path, RouteMatch* match) {
    int path_kinds = 0;
    int second_line = 0;
    std::string second;
    for (absl::string_view f : {"prefix", "path", "regex"}) {
      const MapEntry* e = m.Find(f);
      if (e == nullptr) continue;
      if (++path_kinds == 2) {
        second_line = e->key_line;
        second = std::string(f);
      }
    }
    if (path_kinds > 1) {
      Error(second_line, JoinPath(path, second), "give only one of prefix, path and regex");
    }
    if (const Value* a = Optional(m, "authority")) {
      String(*a, JoinPath(path, "authority"), "a host name", &match->authority);
    }
    if (const Value* p = Optional(m, "prefix")) {
      if (String(*p, JoinPath(path, "prefix"), "a path prefix", &match->prefix) &&
          !absl::StartsWith(match->prefix, "/")) {
        Error(p->line, JoinPath(path, "prefix"), "must start with '/'");
      }
    }
    if (const Value* p = Optional(m, "path")) {
      if (String(*p, JoinPath(path, "path"), "a path", &match->path) &&
          !absl::StartsWith(match->path, "/")) {
        Error(p->line, JoinPath(path, "path"), "must start with '/'");
      }
    }
    if (const Value* p = Optional(m, "regex")) {
      if (String(*p, JoinPath(path, "regex"), "a regular expression", &match->regex)) {
        try {
          std::regex re(match->regex, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          Error(p->line, JoinPath(path, "regex"),
                absl::StrCat("invalid regular expression ", Quote(match->regex), ": ", e.what()));
        }
      }
    }
    if (const Value* p = Optional(m, "method")) {
      String(*p, JoinPath(path, "method"), "a method such as GET", &match->method);
    }
    if (const Value* h = Optional(m, "headers")) {
      std::string hpath = JoinPath(path, "headers");
      if (!List(*h, hpath)) return;
      for (size_t i = 0; i < h->items.size(); ++i) {
        std::string ipath = absl::StrCat(hpath, "[", i, "]");
        HeaderMatch hm;
        if (Map(h->items[i], ipath, kHeaderMatchFields)) {
          if (const Value* n = Required(h->items[i], ipath, "name")) {
            HeaderName(*n, JoinPath(ipath, "name"), &hm.name);
          }
          if (const Value* val = Optional(h->items[i], "value")) {
            hm.has_value = String(*val, JoinPath(ipath, "value"), "a header value", &hm.value);
          }
        }
        match->headers.push_back(std::move(hm));
      }
    }
  }

  // A field name: an RFC 9110 token.
  bool HeaderName(const Value& v, const std::string& path, std::string* out) {
    if (!String(v, path, "a header name", out)) return false;
    bool ok = !out->empty();
    for (char c : *out) {
      ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                  absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos);
    }
    if (!ok) Error(v.line, path, absl::StrCat("invalid header name ", Quote(*out)));
    return ok;
  }

  void HeaderValues(const Value& v, const std::string& path, std::vector<HeaderValue>* out) {
    if (!List(v, path)) return;
    for (size_t i = 0; i < v.items.size(); ++i) {
      std::string ipath = absl::StrCat(path, "[", i, "]");
      HeaderValue hv;
      if (!Map(v.items[i], ipath, kHeaderValueFields)) continue;
      const Value* n = Required(v.items[i], ipath, "name");
      const Value* val = Required(v.items[i], ipath, "value");
      bool ok = n != nullptr && HeaderName(*n, JoinPath(ipath, "name"), &hv.name);
      if (val != nullptr && String(*val, JoinPath(ipath, "value"), "a header value", &hv.value)) {
        if (std::any_of(hv.value.begin(), hv.value.end(),
                        [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
          Error(val->line, JoinPath(ipath, "value"), "must not contain CR, LF or NUL");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (ok) out->push_back(std::move(hv));
    }
  }

  void HeaderNames(const Value& v, const std::string& path, std::vector<std::string>* out) {
    if (!List(v, path)) return;
    for (size_t i = 0; i < v.items.size(); ++i) {
      std::string name;
      if (HeaderName(v.items[i], absl::StrCat(path, "[", i, "]"), &name)) {
        out->push_back(std::move(name));
      }
    }
  }

  void DecodeClusters(const Value& v, std::vector<Cluster>* clusters) {
    if (!List(v, "clusters")) return;
    clusters_complete_ = true;
    absl::flat_hash_map<std::string, int> first_line_of_name;
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Value& item = v.items[i];
      std::string path = absl::StrCat("clusters[", i, "]");
      Cluster cluster;
      cluster.line = item.line;
      if (!Map(item, path, kClusterFields)) {
        clusters_complete_ = false;
        clusters->push_back(std::move(cluster));
        continue;
      }
      if (const Value* n = Required(item, path, "name")) {
        if (Name(*n, JoinPath(path, "name"), &cluster.name)) {
          auto [it, inserted] = first_line_of_name.try_emplace(cluster.name, n->line);
          if (!inserted) {
            Error(n->line, JoinPath(path, "name"),
                  absl::StrCat("duplicate cluster name ", Quote(cluster.name),
                               " (first defined on line ", it->second, ")"));
          }
          cluster_names_.insert(cluster.name);
        } else if (n->IsScalar()) {
          cluster_names_.insert(n->scalar);  // reported already; don't also call refs dangling
        } else {
          clusters_complete_ = false;
        }
      } else {
        clusters_complete_ = false;
      }
      if (const Value* t = Optional(item, "type")) {
        size_t index;
        if (Enum(*t, JoinPath(path, "type"), "cluster type", kClusterTypeNames, &index)) {
          cluster.type = static_cast<ClusterType>(index);
        }
      }
      bool original_dst = cluster.type == ClusterType::kOriginalDst;
      if (original_dst) {
        original_dst_clusters_.insert(cluster.name);
        for (absl::string_view f : kEndpointPolicyFields) {
          if (const MapEntry* e = item.Find(f)) {
            Error(e->key_line, JoinPath(path, f),
                  "does not apply to an original_dst cluster: each request or connection goes to "
                  "its own original destination");
          }
        }
        if (const MapEntry* e = item.Find("tls")) {
          Error(e->key_line, JoinPath(path, "tls"),
                "is not supported on an original_dst cluster yet: its connections go where the "
                "app sent them, as the app sent them");
        }
      } else if (cluster.name == kPassthroughCluster ||
                 cluster.name == kInboundPassthroughCluster) {
        Error(item.Find("name")->value.line, JoinPath(path, "name"),
              absl::StrCat("the name ", Quote(cluster.name),
                           " is the transparent listeners' passthrough; its cluster needs type: "
                           "original_dst (or pick another name)"));
      }
      if (const Value* p = Optional(item, "protocol")) {
        size_t index;
        if (Enum(*p, JoinPath(path, "protocol"), "protocol", kUpstreamProtocolNames, &index)) {
          cluster.protocol = static_cast<UpstreamProtocol>(index);
        }
      }
      if (const Value* t = Optional(item, "connect_timeout")) {
        Duration(*t, JoinPath(path, "connect_timeout"), kMinConnectTimeout, kMaxConnectTimeout,
                 &cluster.connect_timeout);
      }
      if (const Value* m = Optional(item, "max_requests")) {
        int64_t n;
        if (Int(*m, JoinPath(path, "max_requests"), 0, kMaxMaxConnections, " (0: no limit)", &n)) {
          cluster.max_requests = static_cast<uint32_t>(n);
        }
      }
      if (const Value* m = Optional(item, "max_pending_requests")) {
        int64_t n;
        if (Int(*m, JoinPath(path, "max_pending_requests"), 0, kMaxMaxConnections, " (0: no limit)",
                &n)) {
          cluster.max_pending_requests = static_cast<uint32_t>(n);
        }
      }
      if (const Value* m = Optional(item, "max_retries")) {
        int64_t n;
        if (Int(*m, JoinPath(path, "max_retries"), 0, kMaxMaxConnections, " (0: no limit)", &n)) {
          cluster.max_retries = static_cast<uint32_t>(n);
        }
      }
      if (const Value* b = Optional(item, "circuit_breaker")) {
        std::string bpath = JoinPath(path, "circuit_breaker");
        if (Map(*b, bpath, kBreakerFields)) DecodeBreaker(*b, bpath, &cluster.circuit_breaker);
      }
      if (const Value* h = Optional(item, "health_check")) {
        std::string hpath = JoinPath(path, "health_check");
        if (Map(*h, hpath, kHealthCheckFields)) DecodeHealthCheck(*h, hpath, &cluster.health_check);
      }
      if (const Value* t = Optional(item, "tls")) {
        std::string tpath = JoinPath(path, "tls");
        if (Map(*t, tpath, kTlsFields)) DecodeTls(*t, tpath, /*listener=*/false, &cluster.tls);
      }
      if (const Value* p = Optional(item, "panic_threshold_percent")) {
        int64_t n;
        if (Int(*p, JoinPath(path, "panic_threshold_percent"), 0, 100, " (percent)", &n)) {
          cluster.panic_threshold_percent = static_cast<uint32_t>(n);
        }
      }
      if (const Value* m = Optional(item, "max_connections")) {
        int64_t n;
        if (Int(*m, JoinPath(path, "max_connections"), 1, kMaxMaxConnections, "", &n)) {
          cluster.max_connections = static_cast<uint32_t>(n);
        }
      }
      if (const Value* m = Optional(item, "max_idle_connections")) {
        int64_t n;
        if (Int(*m, JoinPath(path, "max_idle_connections"), 0, kMaxIdleConnections, "", &n)) {
          cluster.max_idle_connections = static_cast<uint32_t>(n);
        }
      }
      if (const Value* t = Optional(item, "idle_connection_timeout")) {
        Duration(*t, JoinPath(path, "idle_connection_timeout"), absl::Milliseconds(1),
                 kMaxHttpTimeout, &cluster.idle_connection_timeout);
      }
      if (const Value* p = Optional(item, "lb_policy")) {
        size_t index;
        if (Enum(*p, JoinPath(path, "lb_policy"), "load balancing policy", kLbPolicyNames,
                 &index)) {
          cluster.lb_policy = static_cast<LbPolicy>(index);
        }
      }
      if (const Value* h = Optional(item, "hash_on")) {
        std::string hpath = JoinPath(path, "hash_on");
        bool client_address = false;
        if (RequestKey(*h, hpath, "hash_on", &cluster.hash_header, &client_address) &&
            cluster.lb_policy != LbPolicy::kRingHash) {
          Error(h->line, hpath, "hash_on applies to lb_policy: ring_hash only");
        }
      }
      if (const Value* b = Optional(item, "retry_budget")) {
        std::string bpath = JoinPath(path, "retry_budget");
        if (Map(*b, bpath, kRetryBudgetFields)) {
          if (const Value* r = Optional(*b, "ratio")) {
            Ratio(*r, JoinPath(bpath, "ratio"), &cluster.retry_budget_ratio);
          }
          if (const Value* m = Optional(*b, "min_concurrency")) {
            int64_t n;
            if (Int(*m, JoinPath(bpath, "min_concurrency"), 0, kMaxMaxConnections, "", &n)) {
              cluster.retry_budget_min_concurrency = static_cast<uint32_t>(n);
            }
          }
        }
      }
      if (original_dst) {
        // Reported above; nothing of it is read.
      } else if (const Value* e = Required(item, path, "endpoints")) {
        DecodeEndpoints(*e, JoinPath(path, "endpoints"), &cluster.endpoints);
      }
      clusters->push_back(std::move(cluster));
    }
  }

  void DecodeEndpoints(const Value& v, const std::string& path, std::vector<Endpoint>* out) {
    // `endpoints:` with nothing under it is the same mistake as an empty list.
    if (!v.IsNull() && !List(v, path)) return;
    if (v.IsNull() || v.items.empty()) {
      Error(v.line, path, "must list at least one endpoint");
      return;
    }
    // Per-endpoint state (pools, breakers) is keyed by (cluster, address), so an address listed
    // twice would share one breaker under two weights: reject it.
    absl::flat_hash_map<std::string, int> first_line_of_address;
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Value& item = v.items[i];
      std::string item_path = absl::StrCat(path, "[", i, "]");
      Endpoint endpoint;
      if (Map(item, item_path, kEndpointFields)) {
        if (const Value* a = Required(item, item_path, "address")) {
          if (Address(*a, JoinPath(item_path, "address"), /*endpoint=*/true, &endpoint.address)) {
            auto [it, inserted] =
                first_line_of_address.try_emplace(endpoint.address.ToString(), a->line);
            if (!inserted) {
              Error(a->line, JoinPath(item_path, "address"),
                    absl::StrCat("duplicate endpoint ", endpoint.address.ToString(),
                                 " (first defined on line ", it->second, ")"));
            }
          }
        }
        if (const Value* w = Optional(item, "weight")) {
          int64_t n;
          if (Int(*w, JoinPath(item_path, "weight"), 1, kMaxWeight, "", &n)) {
            endpoint.weight = static_cast<uint32_t>(n);
          }
        }
        if (const Value* z = Optional(item, "zone")) {
          Name(*z, JoinPath(item_path, "zone"), &endpoint.zone);
        }
      }
      out->push_back(std::move(endpoint));
    }
  }

  void CheckReferences() {
    // When the cluster list itself was broken we cannot tell a dangling reference from one to
    // a cluster we failed to read; say nothing rather than something wrong.
    if (!clusters_complete_) return;
    // Only a transparent listener's connections have original destinations.
    auto check_original_dst = [&](const ListenerFacts& l, const std::string& cluster, int line,
                                  const std::string& path) {
      if (l.transparent || !original_dst_clusters_.contains(cluster)) return;
      Error(line, path,
            absl::StrCat("cluster ", Quote(cluster),
                         " is original_dst, which only inbound and outbound listeners can use "
                         "(their connections have an original destination)"));
    };
    for (const ListenerFacts& l : listener_facts_) {
      for (const auto& r : l.route_clusters) {
        if (!cluster_names_.contains(r.cluster)) {
          Error(r.line, r.path, absl::StrCat("unknown cluster ", Quote(r.cluster)));
        }
        check_original_dst(l, r.cluster, r.line, r.path);
      }
      if (!l.cluster_ok) continue;
      if (!cluster_names_.contains(l.cluster)) {
        Error(l.cluster_line, JoinPath(l.path, "cluster"),
              absl::StrCat("unknown cluster ", Quote(l.cluster)));
      }
      check_original_dst(l, l.cluster, l.cluster_line, JoinPath(l.path, "cluster"));
    }
  }

  // A transparent listener with passthrough uses the original_dst cluster of its direction; one
  // the config does not define is added with the defaults (so /config shows what is in effect).
  void AddPassthroughClusters(Config* config) {
    for (const Listener& l : config->listeners) {
      if (!IsTransparent(l.kind) || !l.passthrough) continue;
      std::string name =
          l.kind == ListenerKind::kInbound ? kInboundPassthroughCluster : kPassthroughCluster;
      if (config->FindCluster(name) != nullptr) continue;
      Cluster c;
      c.name = std::move(name);
      c.type = ClusterType::kOriginalDst;
      config->clusters.push_back(std::move(c));
    }
  }

  static std::string Describe(const ListenerFacts& l) {
    return l.name.empty() ? l.path : absl::StrCat("listener ", Quote(l.name));
  }

  void CheckListenerAddresses() {
    for (size_t j = 0; j < listener_facts_.size(); ++j) {
      const ListenerFacts& later = listener_facts_[j];
      if (!later.address_ok) continue;
      for (size_t i = 0; i < j; ++i) {
        const ListenerFacts& earlier = listener_facts_[i];
        if (!earlier.address_ok) continue;
        Overlap overlap = AddressesOverlap(earlier.address, later.address);
        if (overlap == Overlap::kNone) continue;
        std::string message =
            overlap == Overlap::kSame
                ? absl::StrCat("address ", later.address.ToString(), " is already used by ",
                               Describe(earlier), " (line ", earlier.address_line, ")")
                : absl::StrCat("address ", later.address.ToString(), " overlaps ",
                               Describe(earlier), " on ", earlier.address.ToString(), " (line ",
                               earlier.address_line, "); a wildcard address takes the port on ",
                               "every address of its family");
        Error(later.address_line, JoinPath(later.path, "address"), std::move(message));
        break;  // one conflict per listener is enough to act on
      }
    }
  }

  void CheckAdminAddress(const Admin& admin) {
    // Nothing to compare against when the admin address was given but could not be read.
    if (admin_unreadable_ || (admin_address_line_ != 0 && !admin_address_ok_)) return;
    for (const ListenerFacts& l : listener_facts_) {
      if (!l.address_ok || AddressesOverlap(admin.address, l.address) == Overlap::kNone) continue;
      if (admin_address_line_ != 0) {
        Error(admin_address_line_, "admin.address",
              absl::StrCat("address ", admin.address.ToString(), " conflicts with ", Describe(l),
                           " on ", l.address.ToString(), " (line ", l.address_line, ")"));
        return;
      }
      Error(l.address_line, JoinPath(l.path, "address"),
            absl::StrCat("address ", l.address.ToString(), " conflicts with the admin address ",
                         admin.address.ToString(), " (the default; set admin.address to move it)"));
    }
  }

  std::vector<ConfigError>* errors_;
  std::vector<ListenerFacts> listener_facts_;
  absl::flat_hash_set<std::string> cluster_names_;
  absl::flat_hash_set<std::string> original_dst_clusters_;
  bool clusters_complete_ = false;  // every cluster's name is known (valid or reported)
  int admin_address_line_ = 0;      // 0: admin.address not given, the default applies
  bool admin_address_ok_ = false;
  bool admin_unreadable_ = false;  // `admin` was not a map (reported)
};

}  // namespace

std::string SocketAddress::ToString() const {
  if (is_ipv6) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

const Cluster* Config::FindCluster(const std::string& name) const {
  for (const Cluster& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const char* LogLevelName(LogLevel level) {
  size_t i = static_cast<size_t>(level);
  return i < std::size(kLogLevelNames) ? kLogLevelNames[i].data() : "unknown";
}

const char* DirectionName(Direction direction) {
  size_t i = static_cast<size_t>(direction);
  return i < std::size(kDirectionNames) ? kDirectionNames[i].data() : "unknown";
}

const char* UpstreamProtocolName(UpstreamProtocol protocol) {
  auto i = static_cast<size_t>(protocol);
  return i < std::size(kUpstreamProtocolNames) ? kUpstreamProtocolNames[i].data() : "unknown";
}

std::vector<std::string> RetryOnNames(const RetryPolicy& p) {
  std::vector<std::string> out;
  for (size_t i = 0; i < std::size(kRetryOnNames); ++i) {
    if (p.retry_on & (1u << i)) out.emplace_back(kRetryOnNames[i]);
  }
  for (const auto& [name, code] : kRetryGrpcStatuses) {
    if (p.grpc_statuses & (1u << code)) out.emplace_back(name);
  }
  return out;
}

std::vector<std::string> BreakerFailureNames(uint32_t failure_on) {
  std::vector<std::string> names;
  for (size_t i = 0; i < std::size(kBreakerFailureNames); ++i) {
    if (failure_on & (1u << i)) names.emplace_back(kBreakerFailureNames[i]);
  }
  return names;
}

const char* TlsModeName(TlsMode mode) {
  auto i = static_cast<size_t>(mode);
  return i < std::size(kTlsModeNames) ? kTlsModeNames[i].data() : "unknown";
}

const char* ClusterTypeName(ClusterType type) {
  size_t i = static_cast<size_t>(type);
  return i < std::size(kClusterTypeNames) ? kClusterTypeNames[i].data() : "unknown";
}

const char* LbPolicyName(LbPolicy policy) {
  auto i = static_cast<size_t>(policy);
  return i < std::size(kLbPolicyNames) ? kLbPolicyNames[i].data() : "unknown";
}

const char* ListenerKindName(ListenerKind kind) {
  size_t i = static_cast<size_t>(kind);
  return i < std::size(kListenerKindNames) ? kListenerKindNames[i].data() : "unknown";
}

std::string ConfigError::Format(absl::string_view file) const {
  std::string out = line > 0 ? absl::StrCat(file, ":", line, ": ") : absl::StrCat(file, ": ");
  if (!path.empty()) absl::StrAppend(&out, path, ": ");
  absl::StrAppend(&out, message);
  return out;
}

bool DecodeConfig(absl::string_view text, Config* out, std::vector<ConfigError>* errors) {
  std::vector<ConfigError> found;
  Value root;
  // Parse errors that leave a usable tree (an anchor, a duplicate key) do not stop decoding, so
  // the user sees schema errors in the same run.
  ParseYaml(text, &root, &found);
  Config config;
  Decoder(&found).Decode(root, &config);
  if (found.empty()) {
    *out = std::move(config);
    return true;
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  errors->insert(errors->end(), std::make_move_iterator(found.begin()),
                 std::make_move_iterator(found.end()));
  return false;
}

bool LoadConfigFile(const std::string& path, Config* out, std::vector<ConfigError>* errors) {
  auto fail = [&](std::string message) {
    errors->push_back(ConfigError{0, "", std::move(message)});
    return false;
  };
  auto errno_text = [](int err) {
    std::string text = std::strerror(err);
    if (!text.empty()) text[0] = absl::ascii_tolower(static_cast<unsigned char>(text[0]));
    return text;
  };
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(absl::StrCat("cannot open file: ", errno_text(errno)));
  std::string text;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return fail(absl::StrCat("cannot read file: ", errno_text(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      close(fd);
      return fail(absl::StrCat("file is larger than ", kMaxConfigFileBytes / (1024 * 1024),
                               " MiB; this is not a config file"));
    }
  }
  close(fd);
  return DecodeConfig(text, out, errors);
}

bool ParseDuration(absl::string_view text, absl::Duration* out) {
  if (text.empty()) return false;
  constexpr uint64_t kMaxTotalNs = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  // Exact integer arithmetic in nanoseconds: 128 bits hold (unit ns) x (18 fraction digits).
  absl::uint128 total_ns = 0;
  while (!text.empty()) {
    size_t i = 0;
    absl::uint128 whole = 0;
    while (i < text.size() && IsDigit(text[i])) {
      whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
      if (whole > kMaxTotalNs) return false;
      ++i;
    }
    size_t int_digits = i;
    uint64_t fraction = 0;
    uint64_t scale = 1;
    if (i < text.size() && text[i] == '.') {
      ++i;
      size_t frac_digits = 0;
      while (i < text.size() && IsDigit(text[i])) {
        if (frac_digits < 18) {  // later digits are below 1ns for every unit: truncated
          fraction = fraction * 10 + static_cast<uint64_t>(text[i] - '0');
          scale *= 10;
        }
        ++frac_digits;
        ++i;
      }
      if (frac_digits == 0) return false;
    } else if (int_digits == 0) {
      return false;
    }
    text.remove_prefix(i);
    uint64_t unit_ns;
    if (absl::ConsumePrefix(&text, "ms")) {
      unit_ns = 1000 * 1000;
    } else if (absl::ConsumePrefix(&text, "s")) {
      unit_ns = 1000 * 1000 * 1000;
    } else if (absl::ConsumePrefix(&text, "m")) {
      unit_ns = 60ull * 1000 * 1000 * 1000;
    } else if (absl::ConsumePrefix(&text, "h")) {
      unit_ns = 3600ull * 1000 * 1000 * 1000;
    } else {
      return false;
    }
    total_ns += whole * unit_ns + absl::uint128(fraction) * unit_ns / scale;
    if (total_ns > kMaxTotalNs) return false;
  }
  *out = absl::Nanoseconds(static_cast<int64_t>(absl::Uint128Low64(total_ns)));
  return true;
}

std::string DurationToString(absl::Duration d) {
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) return absl::FormatDuration(d);
  int64_t ns = absl::ToInt64Nanoseconds(d);
  if (ns == 0) return "0s";
  struct Unit {
    int64_t ns;
    const char* suffix;
  };
  constexpr Unit kUnits[] = {
      {3600LL * 1000000000, "h"}, {60LL * 1000000000, "m"}, {1000000000, "s"}, {1000000, "ms"}};
  for (const Unit& unit : kUnits) {
    if (ns % unit.ns == 0) return absl::StrCat(ns / unit.ns, unit.suffix);
  }
  std::string fraction = absl::StrFormat("%09d", ns % 1000000000);
  while (fraction.back() == '0') fraction.pop_back();
  return absl::StrCat(ns / 1000000000, ".", fraction, "s");
}

bool ParseSocketAddress(absl::string_view text, SocketAddress* out) {
  std::string why;
  return ParseSocketAddressWithReason(text, out, &why);
}

}  // namespace remora::config
