#include "proxy/event/timeout_list.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/event/sim_dispatcher.h"

namespace remora::event {
namespace {

class TestEntry final : public TimeoutList::Entry {
 public:
  explicit TestEntry(std::function<void()> on_timeout) : on_timeout_(std::move(on_timeout)) {}

 private:
  void OnTimeout() override { on_timeout_(); }
  std::function<void()> on_timeout_;
};

class TimeoutListTest : public testing::Test {
 protected:
  std::string Elapsed() { return absl::FormatDuration(d_.Now() - start_); }
  std::unique_ptr<TestEntry> Named(const std::string& name) {
    return std::make_unique<TestEntry>([this, name] { fired_.push_back(name + "@" + Elapsed()); });
  }

  SimDispatcher d_;
  absl::Time start_ = d_.Now();
  std::vector<std::string> fired_;
};

TEST_F(TimeoutListTest, EachEntryExpiresAtItsOwnDeadlineWithOneTimer) {
  TimeoutList list(d_, absl::Seconds(1));
  auto a = Named("a");
  auto b = Named("b");
  auto c = Named("c");
  a->Arm(list);
  d_.AdvanceTime(absl::Milliseconds(100));
  b->Arm(list);
  d_.AdvanceTime(absl::Milliseconds(100));
  c->Arm(list);
  EXPECT_EQ(d_.ArmedTimers(), 1u);
  d_.AdvanceTime(absl::Seconds(2));
  EXPECT_EQ(fired_, (std::vector<std::string>{"a@1s", "b@1.1s", "c@1.2s"}));
  EXPECT_FALSE(a->armed());
  EXPECT_EQ(d_.ArmedTimers(), 0u);
}

TEST_F(TimeoutListTest, DisarmedEntriesNeverFireAndOthersKeepTheirDeadlines) {
  TimeoutList list(d_, absl::Seconds(1));
  auto a = Named("a");
  auto b = Named("b");
  auto c = Named("c");
  a->Arm(list);
  d_.AdvanceTime(absl::Milliseconds(300));
  b->Arm(list);
  c->Arm(list);
  a->Disarm();  // the head goes: b must not fire at a's deadline
  c.reset();    // destroying disarms
  d_.AdvanceTime(absl::Seconds(2));
  EXPECT_EQ(fired_, (std::vector<std::string>{"b@1.3s"}));
}

TEST_F(TimeoutListTest, RearmingRestartsTheTimeout) {
  TimeoutList list(d_, absl::Seconds(1));
  auto a = Named("a");
  auto b = Named("b");
  a->Arm(list);
  b->Arm(list);
  d_.AdvanceTime(absl::Milliseconds(600));
  a->Arm(list);  // now behind b
  d_.AdvanceTime(absl::Seconds(3));
  EXPECT_EQ(fired_, (std::vector<std::string>{"b@1s", "a@1.6s"}));
}

TEST_F(TimeoutListTest, CallbacksMayArmAgainAndDestroyOtherEntries) {
  TimeoutList list(d_, absl::Seconds(1));
  std::unique_ptr<TestEntry> b = Named("b");
  std::unique_ptr<TestEntry> a;
  int a_runs = 0;
  a = std::make_unique<TestEntry>([&] {
    fired_.push_back("a@" + Elapsed());
    b.reset();  // due at the same instant, never runs
    if (++a_runs < 3) a->Arm(list);
  });
  a->Arm(list);
  b->Arm(list);
  d_.AdvanceTime(absl::Seconds(10));
  EXPECT_EQ(fired_, (std::vector<std::string>{"a@1s", "a@2s", "a@3s"}));
}

TEST_F(TimeoutListTest, EntriesOutliveTheirList) {
  auto a = Named("a");
  {
    TimeoutList list(d_, absl::Seconds(1));
    a->Arm(list);
  }
  EXPECT_FALSE(a->armed());
  d_.AdvanceTime(absl::Seconds(2));
  EXPECT_TRUE(fired_.empty());
}

TEST_F(TimeoutListTest, OneListPerDuration) {
  TimeoutLists lists(d_);
  TimeoutList& one = lists.For(absl::Seconds(1));
  EXPECT_EQ(&lists.For(absl::Milliseconds(1000)), &one);
  EXPECT_NE(&lists.For(absl::Seconds(2)), &one);
  EXPECT_EQ(lists.For(absl::Seconds(2)).timeout(), absl::Seconds(2));
}

// Deadlines of every length, each fired at its own time (never early, at most ~1 ms late) while
// the dispatcher holds one timer per power-of-two list, not one per deadline.
TEST(DeadlineTimerTest, FiresAtItsOwnTimeOnSharedLists) {
  SimDispatcher d;
  TimeoutLists lists(d);
  absl::Time start = d.Now();
  std::vector<int64_t> lengths_ms = {0, 1, 2, 3, 7, 100, 999, 1000, 1001, 4321, 60000, 86400000};
  std::vector<absl::Time> fired(lengths_ms.size(), absl::InfinitePast());
  std::vector<std::unique_ptr<DeadlineTimer>> timers;
  for (size_t i = 0; i < lengths_ms.size(); ++i) {
    timers.push_back(std::make_unique<DeadlineTimer>(lists, [&, i] { fired[i] = d.Now(); }));
    timers.back()->ArmAt(start + absl::Milliseconds(lengths_ms[i]));
    EXPECT_TRUE(timers.back()->armed());
  }
  EXPECT_LE(d.ArmedTimers(), 32u);
  d.AdvanceTime(absl::Hours(25));
  for (size_t i = 0; i < lengths_ms.size(); ++i) {
    absl::Duration at = fired[i] - start;
    EXPECT_GE(at, absl::Milliseconds(lengths_ms[i])) << lengths_ms[i];
    EXPECT_LE(at, absl::Milliseconds(lengths_ms[i] + 1)) << lengths_ms[i];
    EXPECT_FALSE(timers[i]->armed());
  }
}

TEST(DeadlineTimerTest, DisarmAndRearm) {
  SimDispatcher d;
  TimeoutLists lists(d);
  int fired = 0;
  DeadlineTimer t(lists, [&] { ++fired; });
  t.ArmAt(d.Now() + absl::Milliseconds(500));
  d.AdvanceTime(absl::Milliseconds(300));
  t.Disarm();
  d.AdvanceTime(absl::Seconds(1));
  EXPECT_EQ(fired, 0);
  t.ArmAt(d.Now() + absl::Milliseconds(50));
  t.ArmAt(d.Now() + absl::Milliseconds(700));  // replaces the first time
  d.AdvanceTime(absl::Milliseconds(699));
  EXPECT_EQ(fired, 0);
  d.AdvanceTime(absl::Milliseconds(2));
  EXPECT_EQ(fired, 1);
  // A timer may destroy itself from its callback.
  std::unique_ptr<DeadlineTimer> self;
  self = std::make_unique<DeadlineTimer>(lists, [&] { self.reset(); });
  self->ArmAt(d.Now() + absl::Milliseconds(3));
  d.AdvanceTime(absl::Milliseconds(10));
  EXPECT_EQ(self, nullptr);
}

}  // namespace
}  // namespace remora::event
