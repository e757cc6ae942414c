#include "proxy/network/address.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace remora::network {

bool ToSockaddr(const config::SocketAddress& address, sockaddr_storage* out, socklen_t* len) {
  std::memset(out, 0, sizeof(*out));
  if (address.is_ipv6 || address.ip.find(':') != std::string::npos) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(address.port);
    if (inet_pton(AF_INET6, address.ip.c_str(), &sin6->sin6_addr) != 1) return false;
    *len = sizeof(sockaddr_in6);
    return true;
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(out);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(address.port);
  if (inet_pton(AF_INET, address.ip.c_str(), &sin->sin_addr) != 1) return false;
  *len = sizeof(sockaddr_in);
  return true;
}

bool IsLocalResourceShortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EADDRNOTAVAIL;
}

std::string FormatSockaddr(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
    return absl::StrCat(ip, ":", ntohs(sin->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
    return absl::StrCat("[", ip, "]:", ntohs(sin6->sin6_port));
  }
  return "unknown";
}

namespace {

// A bound (not listening) TCP socket, or an error naming the step that failed.
absl::StatusOr<int> BindSocket(const config::SocketAddress& address, bool reuse_port) {
  sockaddr_storage ss;
  socklen_t len;
  if (!ToSockaddr(address, &ss, &len)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address.ToString()));
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  int one = 1;
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat(what, " ", address.ToString()));
  };
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    return fail("SO_REUSEADDR");
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return fail("SO_REUSEPORT");
  }
  if (ss.ss_family == AF_INET6 &&
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
    return fail("IPV6_V6ONLY");
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
  return fd;
}

}  // namespace

absl::StatusOr<int> CreateListenSocket(const config::SocketAddress& address, bool reuse_port,
                                       int backlog) {
  absl::StatusOr<int> fd = BindSocket(address, reuse_port);
  if (!fd.ok()) return fd;
  if (::listen(*fd, backlog) != 0) {
    int err = errno;
    ::close(*fd);
    return absl::ErrnoToStatus(err, absl::StrCat("listen ", address.ToString()));
  }
  return fd;
}

absl::Status CheckAddressFree(const config::SocketAddress& address) {
  absl::StatusOr<int> fd = BindSocket(address, /*reuse_port=*/false);
  if (fd.ok()) {
    ::close(*fd);
    return absl::OkStatus();
  }
  // Without SO_REUSEPORT, bind fails if anyone holds the address, even a SO_REUSEPORT group.
  return absl::Status(fd.status().code(),
                      absl::StrCat(fd.status().message(), " (another socket holds the address)"));
}

absl::StatusOr<int> CreateUnixListenSocket(const std::string& path, int backlog) {
  sockaddr_un sun;
  std::memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path too long: ", path));
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(absl::StrCat(path, " exists and is not a socket"));
    }
    ::unlink(path.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  // Created with no permissions for others from the start; chmod after bind would leave a window.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  int err = errno;
  ::umask(old);
  if (rc != 0 || ::listen(fd, backlog) != 0) {
    if (rc == 0) err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("bind ", path));
  }
  return fd;
}

absl::StatusOr<uint16_t> BoundPort(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return absl::ErrnoToStatus(errno, "getsockname");
  }
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string PeerHost(const std::string& peer) {
  if (!peer.empty() && peer[0] == '[') {
    size_t close = peer.find(']');
    return peer.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return peer.substr(0, peer.rfind(':'));
}

uint16_t PortOf(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

namespace {

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
  }
  return false;
}

}  // namespace

bool GetOriginalDestination(int fd, OriginalDestination* out) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  std::memset(&out->address, 0, sizeof(out->address));
  len = sizeof(out->address);
  int rc = local.ss_family == AF_INET6
               ? ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &out->address, &len)
               : ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &out->address, &len);
  if (rc != 0) {
    // No conntrack record (nf_conntrack not loaded, or no NAT on this path): the connection came
    // to us as addressed.
    out->address = local;
  }
  out->direct = SameAddress(out->address, local);
  return true;
}

}  // namespace remora::network
