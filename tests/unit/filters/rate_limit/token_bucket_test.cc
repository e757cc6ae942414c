#include "filters/rate_limit/token_bucket.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace remora::filters {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(TokenBucketTest, BurstThenTheSustainedRate) {
  BucketRate rate(10, 5);  // a request every 100 ms, 5 at once
  int64_t tat = 0;
  int64_t now = 100 * kSecond;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Admit(rate, tat, now), 0) << i;
  int64_t wait = Admit(rate, tat, now);
  EXPECT_EQ(wait, kSecond / 10);  // the next token is 100 ms away
  EXPECT_NE(Admit(rate, tat, now + wait - 1), 0);
  EXPECT_EQ(Admit(rate, tat, now + wait), 0);
  // Idle for a long time: the bucket refills to the burst, not beyond.
  now += 60 * kSecond;
  int admitted = 0;
  while (Admit(rate, tat, now) == 0) ++admitted;
  EXPECT_EQ(admitted, 5);
}

TEST(TokenBucketTest, AdmitsRateTimesSpanPlusBurstAtThreeTimesTheRate) {
  // 10 s of requests at 3x a limit of 20/s with a burst of 5: at most 20 * 10 + 5 admitted, and
  // (a token bucket wastes nothing under steady excess) at least 20 * 10.
  BucketRate rate(20, 5);
  int64_t tat = 0;
  int admitted = 0;
  int64_t start = 7 * kSecond;
  for (int64_t i = 0; i < 600; ++i) {
    admitted += Admit(rate, tat, start + i * kSecond / 60) == 0;
  }
  EXPECT_LE(admitted, 20 * 10 + 5);
  EXPECT_GE(admitted, 20 * 10);
}

TEST(TokenBucketTest, SharedBucketIsExactAcrossThreads) {
  // Two threads take from one bucket at one instant: exactly the burst gets through.
  SharedBucket bucket(BucketRate(1, 1000));
  std::vector<int> admitted(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50000; ++i) admitted[t] += bucket.Take(kSecond) == 0;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted[0] + admitted[1], 1000);
}

TEST(TokenBucketTest, KeysHaveTheirOwnBucketsAndTheLeastRecentGoesFirst) {
  KeyedBuckets keyed(BucketRate(1, 2), /*max_keys=*/3);
  int64_t now = kSecond;
  for (const char* k : {"a", "b", "c"}) {
    EXPECT_EQ(keyed.Take(k, now), 0);
    EXPECT_EQ(keyed.Take(k, now), 0);
    EXPECT_NE(keyed.Take(k, now), 0) << k;  // each key's burst is its own
  }
  EXPECT_EQ(keyed.size(), 3u);
  EXPECT_NE(keyed.Take("a", now), 0);  // "a" is now the most recent; "b" the least
  EXPECT_EQ(keyed.Take("d", now), 0);  // evicts "b"
  EXPECT_EQ(keyed.size(), 3u);
  EXPECT_EQ(keyed.Take("b", now), 0);  // back with a full bucket (evicting "c")
  EXPECT_NE(keyed.Take("a", now), 0);  // "a" was kept, still empty
  // Many keys stay bounded.
  for (int i = 0; i < 1000; ++i) keyed.Take(absl::StrCat("k", i), now);
  EXPECT_EQ(keyed.size(), 3u);
}

}  // namespace
}  // namespace remora::filters
