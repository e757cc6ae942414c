#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxy/config/decode.h"
#include "proxy/http/connection_manager.h"
#include "proxy/server/snapshot.h"
#include "proxy/upstream/http1_pool.h"

// The filter chain of a real connection manager on a real event loop, with test filters put on
// the listener's chain (one line, below) in place of the registry's: decode runs in order, a
// filter's kStop holds the request until its asynchronous ContinueDecoding, a local reply stops
// decoding before the router, encode runs in reverse, and every filter is told the stream ended.

namespace remora::http {
namespace {

std::vector<std::string> g_log;

class TestFilter : public StreamFilter {
 public:
  TestFilter(std::string name, bool stop_async, bool reply)
      : name_(name), stop_(stop_async), reply_(reply) {}
  FilterStatus DecodeHeaders(RequestHead& head, bool) override {
    g_log.push_back(name_ + ":decode " + head.path);
    if (reply_) {
      callbacks_->SendLocalReply(418, "test_filter", "short and stout");
      return FilterStatus::kStop;
    }
    if (stop_) {
      callbacks_->dispatcher().Post([cb = callbacks_, name = name_] {
        g_log.push_back(name + ":continue");
        cb->ContinueDecoding();
      });
      return FilterStatus::kStop;
    }
    return FilterStatus::kContinue;
  }
  FilterStatus EncodeHeaders(ResponseHead& head, bool) override {
    g_log.push_back(absl::StrCat(name_, ":encode ", head.status));
    head.headers.Add(absl::StrCat("x-seen-by-", name_), "1");
    return FilterStatus::kContinue;
  }
  void OnDestroy() override { g_log.push_back(name_ + ":destroy"); }

 private:
  std::string name_;
  bool stop_, reply_;
};

const FilterFactory kFirst{"first",
                           [](const server::ListenerRuntime&) -> std::unique_ptr<StreamFilter> {
                             return std::make_unique<TestFilter>("first", false, false);
                           }};
const FilterFactory kHolder{"holder",
                            [](const server::ListenerRuntime&) -> std::unique_ptr<StreamFilter> {
                              return std::make_unique<TestFilter>("holder", true, false);
                            }};
const FilterFactory kReplier{"replier",
                             [](const server::ListenerRuntime&) -> std::unique_ptr<StreamFilter> {
                               return std::make_unique<TestFilter>("replier", false, true);
                             }};
constexpr const FilterFactory* kTestChain[] = {&kFirst, &kHolder, &kReplier};

TEST(FilterChainTest, OrderStopAsyncContinueLocalReplyAndDestroy) {
  g_log.clear();
  config::Config cfg;
  std::vector<config::ConfigError> errors;
  ASSERT_TRUE(config::DecodeConfig(R"(
listeners:
  - {name: web, address: "127.0.0.1:0", kind: http, routes: [{match: {prefix: /}, cluster: c}]}
clusters:
  - {name: c, endpoints: [{address: "127.0.0.1:9"}]}
)",
                                   &cfg, &errors));
  event::UvDispatcher dispatcher;
  stats::Store store(1);
  upstream::EndpointStateRegistry endpoints;
  server::ConnectionList connections;
  server::WorkerContext ctx{dispatcher, store.worker(0), connections, 0};
  upstream::Http1Pool pool(ctx);
  ctx.http1_pool = &pool;
  event::TimeoutLists timeouts(dispatcher);
  ctx.timeouts = &timeouts;
  auto snapshot = server::BuildSnapshot(cfg, 1, 1, store, endpoints);
  server::ListenerRuntime listener = *snapshot->FindListener("web");
  listener.filters = kTestChain;  // the test's chain, registered in one line

  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  timeval tv{0, 10 * 1000};
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto conn = event::TcpConnection::Adopt(dispatcher, fds[0]);
  ASSERT_NE(conn, nullptr);
  HttpConnectionManager::Start(ctx, snapshot, listener, std::move(conn));
  std::string req = "GET /tea HTTP/1.1\r\nHost: pot\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::write(fds[1], req.data(), req.size()), static_cast<ssize_t>(req.size()));

  std::string response;
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    uv_run(dispatcher.loop(), UV_RUN_NOWAIT);
    char buf[4096];
    ssize_t n = ::read(fds[1], buf, sizeof(buf));
    if (n > 0) response.append(buf, static_cast<size_t>(n));
    if (n == 0) break;  // the manager closed after its Connection: close reply
  }
  ::close(fds[1]);
  uv_run(dispatcher.loop(), UV_RUN_NOWAIT);

  EXPECT_EQ(g_log, (std::vector<std::string>{
                       "first:decode /tea", "holder:decode /tea", "holder:continue",
                       "replier:decode /tea", "replier:encode 418", "holder:encode 418",
                       "first:encode 418", "first:destroy", "holder:destroy", "replier:destroy"}));
  EXPECT_EQ(response.substr(0, response.find("\r\n")), "HTTP/1.1 418 Unknown");
  EXPECT_NE(response.find("x-remora-reason: test_filter\r\n"), std::string::npos);
  EXPECT_NE(response.find("x-seen-by-first: 1\r\n"), std::string::npos);
  EXPECT_NE(response.find("\r\n\r\nshort and stout\n"), std::string::npos);
  // The router after the replier never ran: no upstream connection was attempted.
  EXPECT_EQ(store.worker(0).Get(snapshot->FindCluster("c")->stats.cx_total), 0u);
  EXPECT_EQ(connections.size(), 0u);
}

}  // namespace
}  // namespace remora::http
