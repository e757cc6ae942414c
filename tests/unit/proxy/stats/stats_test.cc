#include "proxy/stats/stats.h"

#include <gtest/gtest.h>

#include <thread>

#include "proxy/stats/metrics.h"

namespace remora::stats {
namespace {

TEST(StatsTest, SameSeriesSameSlotAndSumsAcrossWriters) {
  Store s(2);
  uint32_t a = s.Register(Type::kCounter, "remora_x_total", "X.", {{"listener", "in"}});
  uint32_t b = s.Register(Type::kCounter, "remora_x_total", "X.", {{"listener", "in"}});
  uint32_t c = s.Register(Type::kCounter, "remora_x_total", "X.", {{"listener", "out"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  s.worker(0).Add(a, 2);
  s.worker(1).Add(a, 3);
  s.main_writer().Add(a);
  EXPECT_EQ(s.Value(a), 6);
}

TEST(StatsTest, GaugesGoNegativePerWriterButSumRight) {
  Store s(2);
  uint32_t g = s.Register(Type::kGauge, "remora_g", "G.");
  s.worker(0).AddSigned(g, 1);
  s.worker(1).AddSigned(g, -1);  // closed on another worker than it opened: sum stays exact
  s.worker(1).AddSigned(g, 5);
  EXPECT_EQ(s.Value(g), 5);
}

TEST(StatsTest, RendersPrometheusTextWithEscapedLabels) {
  Store s(1);
  uint32_t c = s.Register(Type::kCounter, "remora_c_total", "Things.", {{"cluster", "a\"b"}});
  uint32_t g = s.Register(Type::kGauge, "remora_g", "Level.");
  s.worker(0).Add(c, 7);
  s.worker(0).AddSigned(g, -2);
  EXPECT_EQ(s.RenderPrometheus(),
            "# HELP remora_c_total Things.\n# TYPE remora_c_total counter\n"
            "remora_c_total{cluster=\"a\\\"b\"} 7\n"
            "# HELP remora_g Level.\n# TYPE remora_g gauge\nremora_g -2\n");
}

TEST(StatsTest, ManySeriesSpanBlocks) {
  Store s(1);
  uint32_t last = 0;
  for (int i = 0; i < 3000; ++i) {
    last = s.Register(Type::kCounter, "remora_many_total", "M.", {{"cluster", std::to_string(i)}});
  }
  s.worker(0).Add(last, 9);
  EXPECT_EQ(s.Value(last), 9);
}

TEST(StatsTest, ConcurrentWritersAndScrapes) {
  Store s(2);
  uint32_t c = s.Register(Type::kCounter, "remora_t_total", "T.");
  std::thread t0([&] {
    for (int i = 0; i < 100000; ++i) s.worker(0).Add(c);
  });
  std::thread t1([&] {
    for (int i = 0; i < 100000; ++i) s.worker(1).Add(c);
  });
  for (int i = 0; i < 100; ++i) (void)s.RenderPrometheus();
  t0.join();
  t1.join();
  EXPECT_EQ(s.Value(c), 200000);
}

TEST(MetricsTest, ListenerAndClusterFamiliesAreRegistered) {
  Store s(1);
  ListenerStats l = RegisterListenerStats(s, "in");
  ClusterStats cl = RegisterClusterStats(s, "app");
  s.worker(0).Add(l.cx_total);
  s.worker(0).Add(cl.connect_timeout);
  std::string text = s.RenderPrometheus();
  EXPECT_NE(text.find("remora_listener_connections_total{listener=\"in\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("remora_cluster_upstream_connect_failures_total{cluster=\"app\","
                      "reason=\"timeout\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace remora::stats
