#include "proxy/event/tcp_connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "proxy/event/uv_dispatcher.h"
#include "tests/unit/proxy/event/run_loop.h"

// TcpConnection against a real loopback TCP peer: a plain blocking socket the test reads (or does
// not read) itself, so the kernel's buffers decide when writes are taken.

namespace remora::event {
namespace {

class Recorder : public TcpConnection::Callbacks {
 public:
  void OnRead(buffer::Buffer& data) override { data.Clear(); }
  void OnEndOfStream() override {}
  void OnEvent(TcpConnection::Event e) override { events.push_back(e); }
  void OnWriteHighWatermark() override { ++high; }
  void OnWriteLowWatermark() override { ++low; }
  void OnFlushed() override { ++flushed; }
  int high = 0, low = 0, flushed = 0;
  std::vector<TcpConnection::Event> events;
};

// A listening socket on 127.0.0.1 and a free port (written to *a); -1 on failure.
int ListenOnLoopback(sockaddr_in* a) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  *a = sockaddr_in{};
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(a), sizeof(*a)) != 0 || ::listen(fd, 1) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class TcpConnectionTest : public ::testing::Test {
 protected:
  // A connect to `to` from the IPv4 address `source` (host order), port 0.
  std::unique_ptr<TcpConnection> ConnectFrom(const sockaddr_in& to, uint32_t source,
                                             Recorder* rec) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(source);
    auto c = TcpConnection::Connect(dispatcher_, reinterpret_cast<const sockaddr*>(&to),
                                    absl::Seconds(5), reinterpret_cast<sockaddr*>(&src));
    c->SetCallbacks(rec);
    return c;
  }

  void SetUp() override {
    sockaddr_in a{};
    int lfd = ListenOnLoopback(&a);
    ASSERT_GE(lfd, 0);
    // The proxy ignores SIGPIPE process-wide; so must a test writing to reset peers.
    ::signal(SIGPIPE, SIG_IGN);
    peer_ = ::socket(AF_INET, SOCK_STREAM, 0);
    // Small kernel buffers on the peer's side so a few hundred KiB fill them.
    int small = 16 * 1024;
    ::setsockopt(peer_, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    // A missing byte or FIN fails the test in 5 s rather than hanging it.
    timeval tv{5, 0};
    ::setsockopt(peer_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ASSERT_EQ(::connect(peer_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
    ::close(lfd);
    ASSERT_GE(fd, 0);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    conn_ = TcpConnection::Adopt(dispatcher_, fd);
    ASSERT_NE(conn_, nullptr);
    conn_->SetCallbacks(&rec_);
  }
  void TearDown() override {
    conn_.reset();
    RunFor(absl::Milliseconds(5));
    if (peer_ >= 0) ::close(peer_);
  }

  // Turns the loop until `done` or 5 s.
  template <typename F>
  bool RunUntil(F done) {
    return event::testing::RunUntil(dispatcher_, done);
  }
  void RunFor(absl::Duration d) { event::testing::RunFor(dispatcher_, d); }

  // Reads from the peer until `n` bytes or EOF; returns them.
  std::string PeerRead(size_t n, bool* eof = nullptr) {
    std::string got;
    char buf[65536];
    while (got.size() < n) {
      ssize_t r = ::recv(peer_, buf, sizeof(buf), 0);
      if (r <= 0) {
        if (eof != nullptr) *eof = r == 0;
        break;
      }
      got.append(buf, static_cast<size_t>(r));
    }
    return got;
  }

  static std::string Pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    return s;
  }

  UvDispatcher dispatcher_;
  Recorder rec_;
  std::unique_ptr<TcpConnection> conn_;
  int peer_ = -1;
};

TEST_F(TcpConnectionTest, AWriteTheKernelTakesWholeLeavesNoBacklogAndNoCallback) {
  buffer::Buffer out;
  out.Append("hello, kernel");
  conn_->Write(out);
  EXPECT_EQ(conn_->write_backlog(), 0u);
  EXPECT_EQ(conn_->bytes_written(), 13u);
  EXPECT_EQ(PeerRead(13), "hello, kernel");
  RunFor(absl::Milliseconds(20));
  EXPECT_EQ(rec_.flushed, 0);
  EXPECT_EQ(rec_.high, 0);
  EXPECT_TRUE(rec_.events.empty());
}

TEST_F(TcpConnectionTest, ShutdownAfterAWholeWriteSendsTheBytesThenFin) {
  buffer::Buffer out;
  out.Append("last words");
  conn_->Write(out);
  ASSERT_EQ(conn_->write_backlog(), 0u);
  conn_->Shutdown();
  RunFor(absl::Milliseconds(20));
  bool eof = false;
  EXPECT_EQ(PeerRead(1 << 20, &eof), "last words");
  EXPECT_TRUE(eof);
}

TEST_F(TcpConnectionTest, APeerThatStopsReadingBuildsABacklogThatDrainsInOrder) {
  conn_->SetWriteWatermarks(64 * 1024, 256 * 1024);
  const std::string data = Pattern(4 << 20);
  // Written in 32 KiB pieces as a relay would: the first ones go straight to the kernel, the rest
  // queue once its buffers are full.
  size_t off = 0;
  while (off < data.size() && rec_.high == 0) {
    buffer::Buffer out;
    out.Append(absl::string_view(data).substr(off, 32 * 1024));
    off += 32 * 1024;
    conn_->Write(out);
  }
  ASSERT_EQ(rec_.high, 1) << "4 MiB never filled a 16 KiB peer";
  EXPECT_GT(conn_->write_backlog(), 256u * 1024);
  EXPECT_LT(conn_->bytes_written(), off);

  std::string got;
  std::thread reader([&] { got = PeerRead(data.size()); });
  // Keep writing as the watermarks allow, the way a relay resumes its reader on the low one.
  bool drained = RunUntil([&] {
    while (off < data.size() && conn_->write_backlog() < 256 * 1024) {
      buffer::Buffer out;
      out.Append(absl::string_view(data).substr(off, 32 * 1024));
      off += 32 * 1024;
      conn_->Write(out);
    }
    return off >= data.size() && conn_->write_backlog() == 0;
  });
  reader.join();  // ends by itself: all bytes, EOF, or the 5 s receive timeout
  ASSERT_TRUE(drained);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "bytes arrived out of order or corrupted";
  EXPECT_EQ(conn_->bytes_written(), data.size());
  EXPECT_GE(rec_.low, 1);
  EXPECT_GE(rec_.flushed, 1);
  EXPECT_TRUE(rec_.events.empty());
}

// Bytes written while connecting may pass the high watermark. The kernel may take them whole once
// connected, and the writer must still hear the low watermark and OnFlushed, or its reader stays
// stopped and a close-after-flush waits forever.
TEST_F(TcpConnectionTest, ABacklogWrittenWhileConnectingIsReportedDrained) {
  sockaddr_in a{};
  int lfd = ListenOnLoopback(&a);
  ASSERT_GE(lfd, 0);

  Recorder rec;
  auto client =
      TcpConnection::Connect(dispatcher_, reinterpret_cast<sockaddr*>(&a), absl::Seconds(5));
  client->SetCallbacks(&rec);
  client->SetWriteWatermarks(512, 2048);
  buffer::Buffer out;
  out.Append(Pattern(8192));
  client->Write(out);
  EXPECT_EQ(rec.high, 1);
  EXPECT_EQ(client->write_backlog(), 8192u);
  ASSERT_TRUE(RunUntil([&] { return rec.flushed > 0; })) << "never reported drained";
  ASSERT_FALSE(rec.events.empty());
  EXPECT_EQ(rec.events[0], TcpConnection::Event::kConnected);
  EXPECT_EQ(rec.low, 1);
  EXPECT_EQ(rec.flushed, 1);
  EXPECT_EQ(client->write_backlog(), 0u);

  int fd = ::accept(lfd, nullptr, nullptr);
  ::close(lfd);
  ASSERT_GE(fd, 0);
  std::string got;
  char buf[65536];
  while (got.size() < 8192) {
    ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  EXPECT_TRUE(got == Pattern(8192));
  client.reset();
}

// A connect from a given source (the inbound delivery's 127.0.0.6) comes from that address, on a
// port the kernel picks at connect time.
TEST_F(TcpConnectionTest, AConnectFromASourceAddressComesFromIt) {
  sockaddr_in a{};
  int lfd = ListenOnLoopback(&a);
  ASSERT_GE(lfd, 0);
  Recorder rec;
  auto client = ConnectFrom(a, 0x7f000006, &rec);
  ASSERT_TRUE(RunUntil([&] { return !rec.events.empty(); }));
  EXPECT_EQ(rec.events[0], TcpConnection::Event::kConnected);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  int fd = ::accept(lfd, reinterpret_cast<sockaddr*>(&peer), &len);
  ::close(lfd);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ntohl(peer.sin_addr.s_addr), 0x7f000006u);
  EXPECT_NE(ntohs(peer.sin_port), 0);
  ::close(fd);
  client.reset();
}

// A source this host does not have cannot be bound: the connect fails (on a later turn), it does
// not go out from another address.
TEST_F(TcpConnectionTest, AConnectFromAnAddressNotOnThisHostFails) {
  sockaddr_in a{};
  int lfd = ListenOnLoopback(&a);
  ASSERT_GE(lfd, 0);
  Recorder rec;
  auto client = ConnectFrom(a, 0xc0000201, &rec);  // 192.0.2.1, TEST-NET-1
  EXPECT_TRUE(rec.events.empty());
  ASSERT_TRUE(RunUntil([&] { return !rec.events.empty(); }));
  EXPECT_NE(rec.events[0], TcpConnection::Event::kConnected);
  ::close(lfd);
  client.reset();
}

TEST_F(TcpConnectionTest, AWriteToAPeerThatResetIsReportedOnALaterTurn) {
  // RST from the peer: SO_LINGER 0 then close.
  linger l{1, 0};
  ::setsockopt(peer_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(peer_);
  peer_ = -1;
  RunFor(absl::Milliseconds(20));
  buffer::Buffer out;
  out.Append("into the void");
  conn_->Write(out);
  EXPECT_EQ(conn_->write_backlog(), 0u);
  // Reported on a later turn, never inline from Write().
  EXPECT_TRUE(rec_.events.empty());
  ASSERT_TRUE(RunUntil([&] { return !rec_.events.empty(); }));
  EXPECT_EQ(rec_.events[0], TcpConnection::Event::kRemoteReset);
  EXPECT_TRUE(conn_->closed());
}

}  // namespace
}  // namespace remora::event
