#include "proxy/buffer/buffer.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <string>
#include <thread>
#include <vector>

namespace remora::buffer {
namespace {

TEST(BufferTest, AppendCopyAndDrainAcrossSlices) {
  Buffer b;
  b.Append("hello ");
  b.Append(std::string(10000, 'x'));  // larger than a small copy: its own block
  b.Append("world");
  EXPECT_EQ(b.length(), 6u + 10000u + 5u);
  b.Drain(3);
  EXPECT_EQ(b.ToString().substr(0, 3), "lo ");
  b.Drain(3 + 10000);
  EXPECT_EQ(b.ToString(), "world");
  b.Clear();
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, MoveTransfersSlicesWithoutCopy) {
  Buffer a, b;
  a.Append("abc");
  const char* before = nullptr;
  iovec iov[1];
  ASSERT_EQ(a.FillIovecs(iov, 1), 1u);
  before = static_cast<const char*>(iov[0].iov_base);
  b.Append("xy");
  b.Move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.ToString(), "xyabc");
  iovec out[2];
  ASSERT_EQ(b.FillIovecs(out, 2), 2u);
  EXPECT_EQ(static_cast<const char*>(out[1].iov_base), before);  // same bytes, not a copy
}

TEST(BufferTest, MovedFromBufferIsEmptyAndReusable) {
  Buffer a;
  a.Append("abc");
  a.Drain(1);
  Buffer b = std::move(a);
  EXPECT_EQ(b.ToString(), "bc");
  EXPECT_EQ(a.length(), 0u);  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_EQ(a.slice_count(), 0u);
  a.Append("xyz");
  EXPECT_EQ(a.ToString(), "xyz");
  Buffer c;
  c.Append("q");
  c = std::move(a);
  EXPECT_EQ(c.ToString(), "xyz");
  EXPECT_TRUE(a.empty());
}

TEST(BufferTest, MoveFrontSplitsASliceWithoutCopy) {
  Buffer a, b;
  a.Append("hello");
  a.Append(std::string(10000, 'x'));
  a.MoveFront(b, 7);
  EXPECT_EQ(b.ToString(), "helloxx");
  EXPECT_EQ(a.length(), 9998u);
  iovec ia[1], ib[2];
  ASSERT_EQ(a.FillIovecs(ia, 1), 1u);
  ASSERT_EQ(b.FillIovecs(ib, 2), 2u);
  // The cut slice's two halves are adjacent bytes of the same block.
  EXPECT_EQ(static_cast<const char*>(ib[1].iov_base) + 2, static_cast<const char*>(ia[0].iov_base));
  a.MoveFront(b, a.length());
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.length(), 10005u);
}

TEST(BufferTest, MoveSlicesIsBounded) {
  Buffer a, b;
  for (int i = 0; i < 10; ++i) a.Append(Slice());  // empty slices are ignored
  for (int i = 0; i < 5; ++i) a.Append(std::string(5000, static_cast<char>('a' + i)));
  EXPECT_EQ(a.MoveSlices(b, 2), 2u);
  EXPECT_EQ(b.length(), 10000u);
  EXPECT_EQ(a.length(), 15000u);
  EXPECT_EQ(a.ToString()[0], 'c');
}

TEST(SlabPoolTest, SlabsReturnToThePoolWhenTheLastSliceGoes) {
  SlabPool& pool = SlabPool::ForThisThread();
  size_t before = pool.slabs_outstanding();
  {
    Buffer b;
    auto [mem, cap] = ReadArena::ForThisThread().Alloc();
    ASSERT_GE(cap, ReadArena::kMinTail);
    std::memcpy(mem, "data", 4);
    Slice s = ReadArena::ForThisThread().Commit(4);
    Slice shared = s.Share();
    b.Append(std::move(s));
    EXPECT_EQ(shared.view(), "data");
    EXPECT_EQ(b.ToString(), "data");
  }
  // The arena keeps its current slab; nothing else may be outstanding.
  EXPECT_LE(pool.slabs_outstanding(), before + 1);
}

// A worker with many busy connections cycles through more slabs than a fixed small free list
// holds; freeing the excess let glibc hand the pages back and every later read faulted them in
// again (bench: 100k page faults per GiB at 64 streams). The pool keeps up to its recent peak.
TEST(SlabPoolTest, KeepsSlabsUpToItsRecentPeak) {
  SlabPool pool;
  std::vector<Slab*> held;
  for (int i = 0; i < 100; ++i) held.push_back(pool.Acquire());
  for (Slab* s : held) pool.Release(s);
  EXPECT_EQ(pool.slabs_outstanding(), 0u);
  EXPECT_EQ(pool.slabs_free(), 100u);
  held.clear();
  for (int i = 0; i < 100; ++i) held.push_back(pool.Acquire());
  EXPECT_EQ(pool.slabs_free(), 0u);  // all reused, none newly allocated
  for (Slab* s : held) pool.Release(s);
}

// After a burst, periodic trims give the memory back gradually, down to the floor.
TEST(SlabPoolTest, TrimReleasesIdleSlabsDownToTheFloor) {
  SlabPool pool;
  std::vector<Slab*> held;
  for (int i = 0; i < 100; ++i) held.push_back(pool.Acquire());
  for (Slab* s : held) pool.Release(s);
  pool.Trim();
  EXPECT_LT(pool.slabs_free(), 100u);
  EXPECT_GE(pool.slabs_free(), SlabPool::kMinFree);
  for (int i = 0; i < 20; ++i) pool.Trim();
  EXPECT_EQ(pool.slabs_free(), SlabPool::kMinFree);
  // Slabs in use are never trimmed, and the cap follows the new, smaller peak.
  held.clear();
  for (int i = 0; i < 40; ++i) held.push_back(pool.Acquire());
  pool.Trim();
  EXPECT_EQ(pool.slabs_outstanding(), 40u);
  for (Slab* s : held) pool.Release(s);
  EXPECT_EQ(pool.slabs_free(), 40u);
}

// A stalled peer fed many small reads must not pin a 64 KiB read slab per read: small slices
// joining a backlog are copied together into private slabs, large ones are moved as they are.
TEST(BufferTest, MoveCompactingPacksSmallSlicesAndMovesLargeOnes) {
  Buffer backlog;
  backlog.Append(std::string(100, 'x'));
  std::string expected(100, 'x');
  for (int i = 0; i < 300; ++i) {
    Buffer read;
    std::string chunk(100, static_cast<char>('a' + i % 26));
    read.Append(chunk);
    expected += chunk;
    backlog.MoveCompacting(read);
    EXPECT_TRUE(read.empty());
  }
  Buffer big;
  std::string large(Buffer::kCompactBelow, 'L');
  big.Append(large);
  expected += large;
  backlog.MoveCompacting(big);
  EXPECT_EQ(backlog.length(), expected.size());
  EXPECT_EQ(backlog.ToString(), expected);
  iovec iov[64];
  // 30 KB of small reads fit two 16 KiB private slabs (after the first arena slice), then the
  // large slice as it was.
  EXPECT_LE(backlog.FillIovecs(iov, 64), 4u);
}

// A kept copy (a retry's replay body) leaves its source intact, shares large slices and packs
// small ones into private slabs, so it never pins a read slab for a few bytes.
TEST(BufferTest, AppendSharedCompactingKeepsTheSource) {
  Buffer src;
  src.Append(std::string(100, 'a'));
  src.Append(std::string(Buffer::kCompactBelow, 'L'));
  src.Append(std::string(100, 'b'));
  const std::string expected = src.ToString();
  Buffer copy;
  copy.AppendSharedCompacting(src);
  copy.AppendSharedCompacting(src);
  EXPECT_EQ(src.ToString(), expected);
  EXPECT_EQ(copy.ToString(), expected + expected);
  ASSERT_EQ(copy.slice_count(), 5u);                     // a | L | b+a | L | b
  EXPECT_NE(copy.slice(0).data(), src.slice(0).data());  // copied
  EXPECT_EQ(copy.slice(1).data(), src.slice(1).data());  // shared
  EXPECT_EQ(copy.slice(2).size(), 200u);                 // packed together
}

// Read-arena slabs are shared by every connection's reads: never written past a slice's end.
TEST(BufferTest, ArenaSlicesAreNeverExtended) {
  auto [mem, cap] = ReadArena::ForThisThread().Alloc();
  ASSERT_GE(cap, 2u);
  mem[0] = 'a';
  Slice s = ReadArena::ForThisThread().Commit(1);
  EXPECT_FALSE(s.TryExtend("b"));
  EXPECT_EQ(s.view(), "a");
  Slice empty;
  EXPECT_FALSE(empty.TryExtend("b"));
}

TEST(ReadArenaTest, ConsecutiveReadsShareASlab) {
  ReadArena& arena = ReadArena::ForThisThread();
  auto [m1, c1] = arena.Alloc();
  Slice s1 = arena.Commit(100);
  auto [m2, c2] = arena.Alloc();
  EXPECT_EQ(m2, m1 + 100);
  EXPECT_EQ(c2, c1 - 100);
  Slice s2 = arena.Commit(0);
  EXPECT_EQ(s2.size(), 0u);
}

}  // namespace
// The arena is usually the first of the two thread-locals a worker touches; its destructor hands
// its slab back to the pool, so the pool must outlive it (ASan reports a leak/use-after-free if
// not).
TEST(ReadArenaTest, ArenaFirstTouchedOnAThreadExitsCleanly) {
  std::thread t([] {
    auto [mem, len] = ReadArena::ForThisThread().Alloc();
    ASSERT_GE(len, ReadArena::kMinTail);
    mem[0] = 'x';
    Slice s = ReadArena::ForThisThread().Commit(1);
    EXPECT_EQ(SlabPool::ForThisThread().slabs_outstanding(), 1u);
  });
  t.join();
}

}  // namespace remora::buffer
