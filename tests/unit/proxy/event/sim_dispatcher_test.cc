#include "proxy/event/sim_dispatcher.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace remora::event {
namespace {

TEST(SimDispatcherTest, TimersFireInDeadlineOrderAtTheirOwnTime) {
  SimDispatcher d;
  std::vector<std::string> fired;
  absl::Time start = d.Now();
  auto a = d.CreateTimer([&] { fired.push_back("a@" + absl::FormatDuration(d.Now() - start)); });
  auto b = d.CreateTimer([&] { fired.push_back("b@" + absl::FormatDuration(d.Now() - start)); });
  a->Enable(absl::Milliseconds(300));
  b->Enable(absl::Milliseconds(100));
  d.AdvanceTime(absl::Milliseconds(99));
  EXPECT_TRUE(fired.empty());
  d.AdvanceTime(absl::Seconds(1));
  EXPECT_EQ(fired, (std::vector<std::string>{"b@100ms", "a@300ms"}));
  EXPECT_EQ(d.Now() - start, absl::Milliseconds(1099));
}

TEST(SimDispatcherTest, DisableAndRearm) {
  SimDispatcher d;
  int n = 0;
  auto t = d.CreateTimer([&] { ++n; });
  t->Enable(absl::Seconds(1));
  t->Disable();
  d.AdvanceTime(absl::Seconds(2));
  EXPECT_EQ(n, 0);
  t->Enable(absl::Seconds(1));
  t->Enable(absl::Seconds(3));  // re-arming moves the deadline
  d.AdvanceTime(absl::Seconds(2));
  EXPECT_EQ(n, 0);
  d.AdvanceTime(absl::Seconds(1));
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(t->Enabled());
}

TEST(SimDispatcherTest, TimerCallbackCanRearmItself) {
  SimDispatcher d;
  int n = 0;
  std::unique_ptr<Timer> t;
  t = d.CreateTimer([&] {
    if (++n < 3) t->Enable(absl::Seconds(1));
  });
  t->Enable(absl::Seconds(1));
  d.AdvanceTime(absl::Seconds(10));
  EXPECT_EQ(n, 3);
}

TEST(SimDispatcherTest, PostsRunInOrderAndNeverInline) {
  SimDispatcher d;
  std::vector<int> order;
  d.Post([&] {
    order.push_back(1);
    d.Post([&] { order.push_back(3); });
  });
  d.Post([&] { order.push_back(2); });
  EXPECT_TRUE(order.empty());
  d.RunPending();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

struct Tracked : DeferredDeletable {
  explicit Tracked(bool* gone) : gone(gone) {}
  ~Tracked() override { *gone = true; }
  bool* gone;
};

TEST(SimDispatcherTest, DeferredDeleteWaitsForTheTurnToEnd) {
  SimDispatcher d;
  bool gone = false;
  d.DeferredDelete(std::make_unique<Tracked>(&gone));
  EXPECT_FALSE(gone);
  d.RunPending();
  EXPECT_TRUE(gone);
}

}  // namespace
}  // namespace remora::event
