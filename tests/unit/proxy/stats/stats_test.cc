#include "proxy/stats/stats.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

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
            "# HELP remora_stats_series_dropped_total Metric series not recorded because the "
            "store was full.\n# TYPE remora_stats_series_dropped_total counter\n"
            "remora_stats_series_dropped_total 0\n"
            "# HELP remora_c_total Things.\n# TYPE remora_c_total counter\n"
            "remora_c_total{cluster=\"a\\\"b\"} 7\n"
            "# HELP remora_g Level.\n# TYPE remora_g gauge\nremora_g -2\n");
}

TEST(StatsTest, ADivisorRendersSmallUnitsAsTheFamilysUnit) {
  Store s(2);
  uint32_t c = s.Register(Type::kCounter, "remora_wait_seconds_total", "Waits.", {}, 1000000);
  s.worker(0).Add(c, 1500000);  // microseconds
  s.worker(1).Add(c, 250);
  EXPECT_EQ(s.Value(c), 1500250);  // kept in the small unit
  EXPECT_NE(s.RenderPrometheus().find("\nremora_wait_seconds_total 1.500250\n"), std::string::npos);
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

// Reloads that keep renaming listeners or clusters add series for the life of the process. Past
// the store's capacity a new series is not an abort: it writes to a slot nobody renders, and a
// counter says how many were dropped.
TEST(StatsTest, SeriesPastCapacityAreDroppedAndCounted) {
  Store s(1);
  uint32_t kept = s.Register(Type::kCounter, "remora_kept_total", "K.");
  std::vector<uint32_t> slots;
  for (uint32_t i = 0; i < Store::kMaxSeries + 10; ++i) {
    slots.push_back(
        s.Register(Type::kCounter, "remora_many_total", "M.", {{"cluster", std::to_string(i)}}));
  }
  for (uint32_t slot : slots) s.worker(0).Add(slot);
  s.worker(0).Add(kept, 3);
  EXPECT_EQ(s.Value(kept), 3);
  EXPECT_EQ(s.Value(slots.front()), 1);
  EXPECT_EQ(s.Value(slots.back()), 0);  // dropped: its writes went to the unrendered sink
  std::string text = s.RenderPrometheus();
  EXPECT_NE(text.find("remora_kept_total 3\n"), std::string::npos);
  // Every series the store could hold is rendered with its own count of 1; none of the dropped.
  EXPECT_NE(text.find("remora_many_total{cluster=\"0\"} 1\n"), std::string::npos);
  // The store keeps two slots for itself (the unrendered sink and the dropped counter), and one
  // went to remora_kept_total: clusters 0 .. kMaxSeries - 4 fit.
  EXPECT_NE(text.find(absl::StrCat("cluster=\"", Store::kMaxSeries - 4, "\"} 1\n")),
            std::string::npos);
  EXPECT_EQ(text.find(absl::StrCat("cluster=\"", Store::kMaxSeries - 3, "\"")), std::string::npos);
  EXPECT_NE(text.find("\nremora_stats_series_dropped_total 13\n"), std::string::npos);
  // Each refused registration counts, so a reload that re-registers a dropped series shows up.
  s.Register(Type::kCounter, "remora_many_total", "M.", {{"cluster", "again"}});
  EXPECT_NE(s.RenderPrometheus().find("\nremora_stats_series_dropped_total 14\n"),
            std::string::npos);
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
