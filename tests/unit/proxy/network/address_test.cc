#include "proxy/network/address.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace remora::network {
namespace {

// Accept and connect both decide on this whether to back off locally or blame the peer.
TEST(AddressTest, LocalResourceShortageIsOursNotThePeers) {
  for (int err : {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL}) {
    EXPECT_TRUE(IsLocalResourceShortage(err)) << err;
  }
  for (int err : {ECONNREFUSED, ETIMEDOUT, ECONNRESET, EHOSTUNREACH, ENETUNREACH, EAGAIN}) {
    EXPECT_FALSE(IsLocalResourceShortage(err)) << err;
  }
}

}  // namespace
}  // namespace remora::network
