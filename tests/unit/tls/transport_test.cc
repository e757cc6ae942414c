#include "tls/transport.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/event/uv_dispatcher.h"
#include "tests/unit/proxy/event/run_loop.h"
#include "tls/dev_ca.h"

// TLS under TcpConnection, both ends ours on one loop over real loopback sockets: the handshake,
// identities and ALPN, bytes both ways, and every way a handshake fails.

namespace remora::tls {
namespace {

using event::TcpConnection;

class Sink : public TcpConnection::Callbacks {
 public:
  void OnRead(buffer::Buffer& data) override {
    got += data.ToString();
    data.Clear();
  }
  void OnEndOfStream() override { eof = true; }
  void OnEvent(TcpConnection::Event e) override { events.push_back(e); }
  std::string got;
  bool eof = false;
  std::vector<TcpConnection::Event> events;
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

class TlsTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("remora-tls-test-" + std::to_string(getpid())));
    std::filesystem::create_directories(*dir_);
    ca_ = new PemPair(*MakeCa("test CA", absl::Hours(1)));
    Write("ca.pem", ca_->cert);
    Write("ca.key", ca_->key);
    Issue("server", {"spiffe://td/ns/a/sa/server"});
    Issue("client", {"spiffe://td/ns/a/sa/client"});
    WorkloadOptions web;
    web.dns = {"web.example"};  // an ordinary TLS server: no SPIFFE ID
    PemPair w = *IssueWorkload(*ca_, web);
    Write("web.pem", w.cert);
    Write("web.key", w.key);
    PemPair other = *MakeCa("other CA", absl::Hours(1));
    Write("other-ca.pem", other.cert);
    WorkloadOptions o;
    o.uris = {"spiffe://td/ns/a/sa/client"};
    PemPair stranger = *IssueWorkload(other, o);
    Write("stranger.pem", stranger.cert);
    Write("stranger.key", stranger.key);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete ca_;
  }
  static void Write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomically(*dir_ + "/" + name, text, 0600).ok());
  }
  static void Issue(const std::string& name, std::vector<std::string> uris) {
    WorkloadOptions o;
    o.uris = std::move(uris);
    PemPair p = *IssueWorkload(*ca_, o);
    Write(name + ".pem", p.cert);
    Write(name + ".key", p.key);
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  static ContextOptions Server() {
    ContextOptions o;
    o.server = true;
    o.cert_file = Path("server.pem");
    o.key_file = Path("server.key");
    o.ca_file = Path("ca.pem");
    o.require_peer_certificate = true;
    o.alpn = {"h2", "http/1.1"};
    return o;
  }
  static ContextOptions Client(const std::string& name = "client") {
    ContextOptions o;
    o.server = false;
    o.cert_file = Path(name + ".pem");
    o.key_file = Path(name + ".key");
    o.ca_file = Path("ca.pem");
    o.alpn = {"h2"};
    o.peer.exact = "spiffe://td/ns/a/sa/server";
    return o;
  }

  void SetUp() override {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(lfd_, 4), 0);
    ASSERT_EQ(::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    addr_ = a;
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    RunFor(absl::Milliseconds(5));
    ::close(lfd_);
  }

  // A client connection with `client` TLS, and the server side with `server` TLS (adopted once
  // accepted).
  void Connect(const ContextOptions& client, const ContextOptions& server,
               absl::Duration handshake_timeout = absl::Seconds(5)) {
    auto cc = Context::Load(client);
    auto sc = Context::Load(server);
    ASSERT_TRUE(cc.ok()) << cc.status();
    ASSERT_TRUE(sc.ok()) << sc.status();
    ConnectWith(*cc, *sc, handshake_timeout);
  }
  // As Connect, with contexts already loaded; `session_key` as TlsTransport takes it.
  void ConnectWith(std::shared_ptr<const Context> cc, std::shared_ptr<const Context> sc,
                   absl::Duration handshake_timeout = absl::Seconds(5),
                   std::string session_key = {}) {
    client_ =
        TcpConnection::Connect(dispatcher_, reinterpret_cast<sockaddr*>(&addr_), absl::Seconds(5));
    auto ct = std::make_unique<TlsTransport>(std::move(cc), "", std::move(session_key));
    client_tls_ = ct.get();
    client_->SetTransport(std::move(ct), absl::ZeroDuration());
    client_->SetCallbacks(&client_sink_);
    client_->ReadEnable(true);
    Accept(std::move(sc), handshake_timeout);
  }
  // A new connection (ConnectWith) and one exchange each way on it: a TLS 1.3 ticket comes
  // after the handshake, read with the data.
  bool Exchange(std::shared_ptr<const Context> cc, std::shared_ptr<const Context> sc,
                const std::string& session_key) {
    client_sink_ = Sink();
    server_sink_ = Sink();
    ConnectWith(std::move(cc), std::move(sc), absl::Seconds(5), session_key);
    buffer::Buffer ping;
    ping.Append("ping");
    client_->Write(ping);
    if (!RunUntil([&] { return server_sink_.got == "ping"; })) return false;
    buffer::Buffer pong;
    pong.Append("pong");
    server_->Write(pong);
    return RunUntil([&] { return client_sink_.got == "pong"; });
  }
  void Accept(std::shared_ptr<const Context> sc, absl::Duration handshake_timeout) {
    int fd = -1;
    ASSERT_TRUE(RunUntil([&] {
      fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK);
      return fd >= 0;
    }));
    server_ = TcpConnection::Adopt(dispatcher_, fd);
    auto st = std::make_unique<TlsTransport>(std::move(sc));
    server_tls_ = st.get();
    server_->SetTransport(std::move(st), handshake_timeout);
    server_->SetCallbacks(&server_sink_);
    server_->ReadEnable(true);
  }

  // Turns the loop until `done` or 5 s.
  template <typename F>
  bool RunUntil(F done) {
    return event::testing::RunUntil(dispatcher_, done);
  }
  void RunFor(absl::Duration d) { event::testing::RunFor(dispatcher_, d); }

  static std::string* dir_;
  static PemPair* ca_;
  event::UvDispatcher dispatcher_;
  int lfd_ = -1;
  sockaddr_in addr_{};
  std::unique_ptr<TcpConnection> client_, server_;
  TlsTransport* client_tls_ = nullptr;
  TlsTransport* server_tls_ = nullptr;
  Sink client_sink_, server_sink_;
};
std::string* TlsTransportTest::dir_ = nullptr;
PemPair* TlsTransportTest::ca_ = nullptr;

TEST_F(TlsTransportTest, MutualTlsCarriesBytesBothWaysAndNamesBothPeers) {
  Connect(Client(), Server());
  // Written before the handshake completes: held, then sent.
  buffer::Buffer early;
  early.Append("hello before the handshake");
  client_->Write(early);
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
  ASSERT_TRUE(RunUntil([&] { return server_sink_.got.size() >= 26; }));
  EXPECT_EQ(server_sink_.got, "hello before the handshake");
  EXPECT_EQ(server_tls_->peer_identity(), "spiffe://td/ns/a/sa/client");
  EXPECT_EQ(client_tls_->peer_identity(), "spiffe://td/ns/a/sa/server");
  EXPECT_EQ(client_tls_->alpn(), "h2");
  EXPECT_EQ(server_tls_->alpn(), "h2");
  // 2 MiB each way, byte-exact, across many records and reads.
  std::string big = Pattern(2 << 20);
  buffer::Buffer out;
  out.Append(big);
  server_->Write(out);
  buffer::Buffer back;
  back.Append(big);
  client_->Write(back);
  ASSERT_TRUE(RunUntil([&] {
    return client_sink_.got.size() >= big.size() && server_sink_.got.size() >= big.size() + 26;
  }));
  EXPECT_TRUE(client_sink_.got == big);
  EXPECT_TRUE(server_sink_.got.substr(26) == big);
  EXPECT_GT(client_->bytes_written(), big.size());  // the wire: plaintext plus TLS framing
  // A clean end: close_notify and FIN reach the server as its end of stream.
  client_->Shutdown();
  ASSERT_TRUE(RunUntil([&] { return server_sink_.eof; }));
  EXPECT_TRUE(server_sink_.events.empty());
}

// A client keeps the tickets an endpoint gives it and resumes with them: no certificates are
// exchanged again, yet both sides still know who the other is. A new context on either side
// (a rotation) makes a full handshake.
TEST_F(TlsTransportTest, AClientResumesItsSessionWithAnEndpointUntilEitherContextChanges) {
  std::shared_ptr<const Context> cc = *Context::Load(Client());
  std::shared_ptr<const Context> sc = *Context::Load(Server());
  auto exchange = [&](std::shared_ptr<const Context> c, std::shared_ptr<const Context> s,
                      std::string key) { return Exchange(std::move(c), std::move(s), key); };
  ASSERT_TRUE(exchange(cc, sc, "127.0.0.1:1"));
  EXPECT_FALSE(client_tls_->resumed());
  ASSERT_TRUE(exchange(cc, sc, "127.0.0.1:1"));
  EXPECT_TRUE(client_tls_->resumed());
  EXPECT_TRUE(server_tls_->resumed());
  EXPECT_EQ(server_tls_->peer_identity(), "spiffe://td/ns/a/sa/client");
  EXPECT_EQ(client_tls_->peer_identity(), "spiffe://td/ns/a/sa/server");
  EXPECT_EQ(client_tls_->alpn(), "h2");
  // Another endpoint, or no key: nothing to resume.
  ASSERT_TRUE(exchange(cc, sc, "127.0.0.1:2"));
  EXPECT_FALSE(client_tls_->resumed());
  ASSERT_TRUE(exchange(cc, sc, ""));
  EXPECT_FALSE(client_tls_->resumed());
  // The server's context rotated: it declines the old ticket, and the handshake is full.
  std::shared_ptr<const Context> rotated = *Context::Load(Server());
  ASSERT_TRUE(exchange(cc, rotated, "127.0.0.1:1"));
  EXPECT_FALSE(client_tls_->resumed());
  EXPECT_EQ(server_tls_->peer_identity(), "spiffe://td/ns/a/sa/client");
  // The client's context rotated: it has no sessions.
  ASSERT_TRUE(exchange(*Context::Load(Client()), rotated, "127.0.0.1:1"));
  EXPECT_FALSE(client_tls_->resumed());
}

// A TLS 1.3 KeyUpdate asking for one back: both directions stay intact under new keys.
TEST_F(TlsTransportTest, AKeyUpdateAnsweredWhileReadingKeepsBothDirectionsIntact) {
  Connect(Client(), Server());
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  ASSERT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(SSL_key_update(client_tls_->ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    std::string ask = "ping " + std::to_string(round) + Pattern(3000);
    buffer::Buffer out;
    out.Append(ask);
    client_->Write(out);  // the KeyUpdate goes first, in the same flight
    ASSERT_TRUE(RunUntil([&] { return server_sink_.got.size() >= ask.size(); }));
    EXPECT_TRUE(server_sink_.got == ask) << "round " << round;
    server_sink_.got.clear();
    std::string answer = "pong " + std::to_string(round) + Pattern(5000);
    buffer::Buffer back;
    back.Append(answer);
    server_->Write(back);  // under the server's updated keys
    ASSERT_TRUE(RunUntil([&] { return client_sink_.got.size() >= answer.size(); }))
        << "round " << round;
    EXPECT_TRUE(client_sink_.got == answer) << "round " << round;
    client_sink_.got.clear();
  }
  EXPECT_TRUE(client_sink_.events.size() == 1 && server_sink_.events.empty());
}

// A TLS 1.2 server asking to renegotiate: our client refuses with an alert that OpenSSL writes
// from inside SSL_read, while it decrypts into the read arena. The alert must not land in the
// memory being decrypted into (the plaintext would be misplaced, the alert garbled).
TEST_F(TlsTransportTest, AnAlertWrittenWhileReadingDoesNotCorruptWhatIsRead) {
  Connect(Client(), Server());
  SSL_set_max_proto_version(client_tls_->ssl(), TLS1_2_VERSION);  // before its handshake runs
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  ASSERT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
  ASSERT_EQ(SSL_version(client_tls_->ssl()), TLS1_2_VERSION);
  SSL_clear_options(server_tls_->ssl(), SSL_OP_NO_RENEGOTIATION);
  ASSERT_EQ(SSL_renegotiate(server_tls_->ssl()), 1);
  std::string answer = Pattern(3000);
  buffer::Buffer out;
  out.Append(answer);
  server_->Write(out);  // HelloRequest, then the data
  ASSERT_TRUE(RunUntil([&] { return client_sink_.got.size() >= answer.size(); }));
  EXPECT_TRUE(client_sink_.got == answer);
}

// A resumed handshake checks no certificate: once the server's certificate has expired, its
// session is not offered, and the full handshake that follows refuses the certificate.
TEST_F(TlsTransportTest, ASessionIsNotResumedPastItsPeersCertificate) {
  WorkloadOptions o;
  o.uris = {"spiffe://td/ns/a/sa/server"};
  o.not_after = absl::Now() + absl::Seconds(2);
  PemPair shortlived = *IssueWorkload(*ca_, o);
  Write("short.pem", shortlived.cert);
  Write("short.key", shortlived.key);
  ContextOptions server = Server();
  server.cert_file = Path("short.pem");
  server.key_file = Path("short.key");
  std::shared_ptr<const Context> cc = *Context::Load(Client());
  std::shared_ptr<const Context> sc = *Context::Load(server);
  ASSERT_TRUE(Exchange(cc, sc, "127.0.0.1:1"));
  ASSERT_TRUE(Exchange(cc, sc, "127.0.0.1:1"));
  ASSERT_TRUE(client_tls_->resumed());  // the session is good while the certificate is
  absl::SleepFor(o.not_after - absl::Now() + absl::Milliseconds(1100));  // whole seconds
  client_sink_ = Sink();
  ConnectWith(cc, sc, absl::Seconds(5), "127.0.0.1:1");
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnectFailed);
  EXPECT_EQ(client_tls_->failure(), HandshakeFailure::kExpired);
}

// A session kept for an endpoint is never the one a connection uses: OpenSSL marks a TLS 1.3
// session used for a resumption as spent, which would spoil it for every later connection
// when the server sends no new ticket.
TEST_F(TlsTransportTest, AKeptSessionStaysResumableAfterAConnectionResumesWithIt) {
  std::shared_ptr<const Context> cc = *Context::Load(Client());
  std::shared_ptr<const Context> sc = *Context::Load(Server());
  auto resume = [&] { return Exchange(cc, sc, "127.0.0.1:1"); };
  ASSERT_TRUE(resume());                      // a full handshake; its tickets are kept
  SSL_CTX_set_num_tickets(sc->ssl_ctx(), 0);  // from now on, no new tickets
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(resume());
    EXPECT_TRUE(client_tls_->resumed()) << "connection " << i;
  }
}

// A sidecar's tunnel offers only the mesh's mark: a listener that does not take tunnels chooses
// no protocol rather than refusing; an offer of other protocols it does not speak is refused.
TEST_F(TlsTransportTest, OnlyTheMeshsMarksGoUnansweredOtherUnsharedProtocolsAreRefused) {
  ContextOptions tunnel = Client();
  tunnel.alpn = {kAlpnTunnel};
  Connect(tunnel, Server());
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
  EXPECT_EQ(client_tls_->alpn(), "");
  ContextOptions other = Client();
  other.alpn = {"x-other"};
  client_sink_ = Sink();
  Connect(other, Server());
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnectFailed);
  EXPECT_EQ(client_tls_->failure(), HandshakeFailure::kNoSharedProtocol);
}

// In TLS 1.3 a client's handshake is done before the server has checked the client's
// certificate: the client connects, then the server's alert resets the connection. The client
// still learns why: the alert is a refusal of its certificate, reported as a failed handshake.
TEST_F(TlsTransportTest, AClientOfTheWrongIdentityIsRefused) {
  ContextOptions server = Server();
  server.peer.exact = "spiffe://td/ns/a/sa/someone-else";
  Connect(Client(), server);
  std::vector<HandshakeFailure> reported;
  client_tls_->SetOnHandshakeDone([&](const TlsTransport& t) { reported.push_back(t.failure()); });
  ASSERT_TRUE(RunUntil([&] { return client_->closed(); }));
  EXPECT_EQ(client_sink_.events.back(), TcpConnection::Event::kRemoteReset);
  EXPECT_EQ(reported, (std::vector<HandshakeFailure>{HandshakeFailure::kNone,
                                                     HandshakeFailure::kRejectedByPeer}));
  EXPECT_NE(client_tls_->failure_detail().find("after our side had completed"), std::string::npos)
      << client_tls_->failure_detail();
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_sink_.events[0], TcpConnection::Event::kRemoteReset);
  EXPECT_EQ(server_tls_->failure(), HandshakeFailure::kWrongIdentity);
  EXPECT_NE(server_tls_->failure_detail().find("spiffe://td/ns/a/sa/client"), std::string::npos)
      << server_tls_->failure_detail();
  EXPECT_TRUE(server_sink_.got.empty());
}

// The mesh's CA certificate presented as a client's own: OpenSSL refuses its purpose before the
// SVID checks run; it is still a bad SVID, and said to be a CA.
TEST_F(TlsTransportTest, ACaCertificateAsAClientsOwnIsABadSvid) {
  ContextOptions client = Client();
  client.cert_file = Path("ca.pem");
  client.key_file = Path("ca.key");
  Connect(client, Server());
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_tls_->failure(), HandshakeFailure::kBadSvid);
  EXPECT_EQ(server_tls_->failure_detail().rfind("ca_as_leaf", 0), 0u)
      << server_tls_->failure_detail();
  EXPECT_TRUE(server_sink_.got.empty());
}

TEST_F(TlsTransportTest, AServerOfTheWrongIdentityIsRefusedByTheClient) {
  ContextOptions client = Client();
  client.peer.exact = "spiffe://td/ns/a/sa/not-the-server";
  Connect(client, Server());
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnectFailed);
  EXPECT_EQ(client_tls_->failure(), HandshakeFailure::kWrongIdentity);
  // A trust domain wide expectation admits it.
  TearDown();
  SetUp();
  client_sink_ = Sink();
  server_sink_ = Sink();
  client.peer = SpiffeMatcher{"", "td"};
  Connect(client, Server());
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
}

TEST_F(TlsTransportTest, ACertificateFromAnotherCaIsUntrusted) {
  Connect(Client("stranger"), Server());
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_tls_->failure(), HandshakeFailure::kUntrusted);
  ASSERT_TRUE(RunUntil([&] { return client_->closed(); }));  // as above: TLS 1.3
  EXPECT_EQ(client_sink_.events.back(), TcpConnection::Event::kRemoteReset);
}

TEST_F(TlsTransportTest, PlaintextToATlsServerFailsAsNotTls) {
  auto sc = Context::Load(Server());
  ASSERT_TRUE(sc.ok());
  auto plain =
      TcpConnection::Connect(dispatcher_, reinterpret_cast<sockaddr*>(&addr_), absl::Seconds(5));
  Sink plain_sink;
  plain->SetCallbacks(&plain_sink);
  plain->ReadEnable(true);
  buffer::Buffer req;
  req.Append("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  plain->Write(req);
  Accept(*sc, absl::Seconds(5));
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_tls_->failure(), HandshakeFailure::kNotTls);
  EXPECT_FALSE(server_->handshake_timed_out());
  EXPECT_TRUE(server_sink_.got.empty());  // nothing reached the owner
  plain.reset();
}

TEST_F(TlsTransportTest, AStalledHandshakeTimesOut) {
  auto sc = Context::Load(Server());
  ASSERT_TRUE(sc.ok());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_)), 0);
  Accept(*sc, absl::Milliseconds(100));  // the client says nothing
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_sink_.events[0], TcpConnection::Event::kRemoteReset);
  EXPECT_TRUE(server_->handshake_timed_out());
  ::close(fd);
}

TEST_F(TlsTransportTest, AClientWithoutACertificateIsRefusedUnderMutualTls) {
  ContextOptions client = Client();
  client.cert_file.clear();
  client.key_file.clear();
  Connect(client, Server());
  ASSERT_TRUE(RunUntil([&] { return !server_sink_.events.empty(); }));
  EXPECT_EQ(server_tls_->failure(), HandshakeFailure::kNoPeerCertificate);
}

// A cluster of plain TLS servers (no spiffe_id or trust_domain) checks the host name instead.
TEST_F(TlsTransportTest, APlainTlsServerIsCheckedByHostName) {
  ContextOptions server = Server();
  server.cert_file = Path("web.pem");
  server.key_file = Path("web.key");
  server.ca_file.clear();
  server.require_peer_certificate = false;
  ContextOptions client = Client();
  client.peer = SpiffeMatcher{};
  client.spiffe = false;
  client.sni = "web.example";
  Connect(client, server);
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnected);
  EXPECT_EQ(client_tls_->peer_identity(), "");
  TearDown();
  SetUp();
  client_sink_ = Sink();
  server_sink_ = Sink();
  client.sni = "other.example";
  Connect(client, server);
  ASSERT_TRUE(RunUntil([&] { return !client_sink_.events.empty(); }));
  EXPECT_EQ(client_sink_.events[0], TcpConnection::Event::kConnectFailed);
  EXPECT_EQ(client_tls_->failure(), HandshakeFailure::kWrongIdentity);
}

TEST_F(TlsTransportTest, ContextsRefuseWhatCannotWork) {
  ContextOptions o = Server();
  o.key_file = Path("client.key");  // not the certificate's key
  absl::StatusOr<std::shared_ptr<const Context>> c = Context::Load(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("does not match"), std::string::npos) << c.status();
  o = Server();
  o.cert_file = Path("missing.pem");
  c = Context::Load(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("missing.pem"), std::string::npos) << c.status();
  ContextOptions client = Client();
  client.ca_file.clear();
  EXPECT_FALSE(Context::Load(client).ok());  // a client never trusts blindly
}

}  // namespace
}  // namespace remora::tls
