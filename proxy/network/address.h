#pragma once

// Socket address conversions and listening-socket creation: plain POSIX, no event loop.

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "absl/status/statusor.h"
#include "proxy/config/config.h"

namespace remora::network {

// True for errno values that mean this process or host is short of something (descriptors, socket
// buffers, memory, ephemeral ports) rather than that the peer failed: accept and connect back off
// and retry on these instead of blaming an endpoint.
bool IsLocalResourceShortage(int err);

// Fills `out` from an IP literal and port. False if the IP does not parse.
bool ToSockaddr(const config::SocketAddress& address, sockaddr_storage* out, socklen_t* len);
// "1.2.3.4:80" / "[::1]:80"; "unknown" for other families.
std::string FormatSockaddr(const sockaddr* sa);

// A peer's address without the port, as StreamInfo keeps it: "127.0.0.1:5000" -> "127.0.0.1",
// "[::1]:5000" -> "::1".
std::string PeerHost(const std::string& peer);

// A non-blocking, close-on-exec, listening TCP socket with SO_REUSEADDR, and SO_REUSEPORT when
// `reuse_port` (one socket per worker on the same port; the kernel spreads connections).
// The error names the address and the system error.
absl::StatusOr<int> CreateListenSocket(const config::SocketAddress& address, bool reuse_port,
                                       int backlog);
// A listening Unix-domain socket at `path` (a stale socket file there is replaced), mode 0600: only
// the proxy's own user can connect, which is what makes the admin socket trusted.
absl::StatusOr<int> CreateUnixListenSocket(const std::string& path, int backlog);
// Fails if any socket is bound to `address`. SO_REUSEPORT would let our listeners silently join
// another process's group on the same port (a second remora, or another server run by the same
// user) and share its traffic; a bind without it detects that first.
absl::Status CheckAddressFree(const config::SocketAddress& address);
// The port a bound socket got (for port 0).
absl::StatusOr<uint16_t> BoundPort(int fd);

// Where an accepted connection was going before NAT redirected it to us (SO_ORIGINAL_DST, or
// IP6T_SO_ORIGINAL_DST for IPv6), and whether that is simply our own address: a connection made
// straight to the listener (without NAT the kernel answers with the listener's own address, and
// forwarding there would loop back to us). False if the socket has no such record.
struct OriginalDestination {
  sockaddr_storage address;
  bool direct;  // the original destination is this socket's own local address
};
bool GetOriginalDestination(int fd, OriginalDestination* out);
uint16_t PortOf(const sockaddr_storage& address);

// Where a transparent listener forwards what no cluster endpoint takes (an original_dst cluster):
// the original destination (outbound), or the app on loopback (inbound), connecting from `source`
// when bind_source (127.0.0.6, which interception rules exempt, so the delivery is not
// intercepted again).
struct Destination {
  sockaddr_storage address;
  sockaddr_storage source;
  bool bind_source = false;
};

}  // namespace remora::network
