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

enum class ListenerKind { kTcp };

struct Listener {
  std::string name;
  SocketAddress address;
  ListenerKind kind = ListenerKind::kTcp;
  std::string cluster;  // tcp: where every connection goes
  // Bytes buffered per direction before reading from the other side stops (high watermark);
  // reading resumes when the backlog falls below half of it.
  uint32_t buffer_limit_bytes = 256 * 1024;
  int line = 0;  // where the listener was defined, for later diagnostics
};

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;
};

struct Cluster {
  std::string name;
  std::vector<Endpoint> endpoints;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Upper bound on concurrent upstream connections to the whole cluster (all workers together);
  // a connection over it is refused and counted as overflow, never as an endpoint failure.
  uint32_t max_connections = 1024;
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
  absl::Duration drain_timeout = absl::Seconds(30);
  LogLevel log_level = LogLevel::kInfo;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* FindCluster(const std::string& name) const;
};

const char* LogLevelName(LogLevel level);
const char* ListenerKindName(ListenerKind kind);

}  // namespace remora::config
