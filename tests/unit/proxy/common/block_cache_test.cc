#include "proxy/common/block_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace remora::mem {
namespace {

// Each test starts from an empty cache on a thread of its own.
template <class F>
void OnFreshThread(F f) {
  std::thread t(f);
  t.join();
}

TEST(BlockCacheTest, AFreedBlockServesTheNextAllocationOfItsSizeClass) {
  OnFreshThread([] {
    void* a = Allocate(200);
    Free(a, 200);
    if (!CachingEnabled()) {
      // Sanitizer builds: straight to free, so ASan still sees use-after-free.
      EXPECT_EQ(CachedBlocksThisThread(), 0u);
      return;
    }
    EXPECT_EQ(CachedBlocksThisThread(), 1u);
    void* b = Allocate(193);  // same 16-byte class (193..208)
    EXPECT_EQ(b, a);
    EXPECT_EQ(CachedBlocksThisThread(), 0u);
    void* c = Allocate(224);  // another class: a new block
    Free(b, 193);
    void* d = Allocate(240);  // 225..240: not b's class
    EXPECT_NE(d, b);
    Free(c, 224);
    Free(d, 240);
    EXPECT_EQ(CachedBlocksThisThread(), 3u);
  });
}

TEST(BlockCacheTest, LargeBlocksAndBlocksOverTheCapGoBackToMalloc) {
  OnFreshThread([] {
    if (!CachingEnabled()) GTEST_SKIP() << "sanitizer build: nothing is cached";
    void* big = Allocate(64 * 1024);
    Free(big, 64 * 1024);
    EXPECT_EQ(CachedBlocksThisThread(), 0u);
    std::vector<void*> blocks;
    for (int i = 0; i < 1500; ++i) blocks.push_back(Allocate(64));
    for (void* p : blocks) Free(p, 64);
    EXPECT_EQ(CachedBlocksThisThread(), 1024u);
  });
}

TEST(BlockCacheTest, TrimGivesBackHalfOfWhatStayedIdle) {
  OnFreshThread([] {
    if (!CachingEnabled()) GTEST_SKIP() << "sanitizer build: nothing is cached";
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(Allocate(128));
    for (void* p : blocks) Free(p, 128);
    TrimThisThread();  // the low-water mark starts from here
    EXPECT_EQ(CachedBlocksThisThread(), 100u);
    void* used = Allocate(128);  // in use since: 99 idle
    TrimThisThread();
    EXPECT_EQ(CachedBlocksThisThread(), 99u - 49u);
    TrimThisThread();
    EXPECT_EQ(CachedBlocksThisThread(), 50u - 25u);
    Free(used, 128);
  });
}

struct Base : Cached {
  virtual ~Base() = default;
  char pad[40];
};
struct Derived : Base {
  char more[200];
};

TEST(BlockCacheTest, CachedClassesDeleteThroughTheBaseWithTheirOwnSize) {
  OnFreshThread([] {
    if (!CachingEnabled()) GTEST_SKIP() << "sanitizer build: nothing is cached";
    std::unique_ptr<Base> d = std::make_unique<Derived>();
    Base* first = d.get();
    d.reset();  // sized delete with sizeof(Derived)
    EXPECT_EQ(CachedBlocksThisThread(), 1u);
    auto small = std::make_unique<Base>();  // another size class: not the freed block
    EXPECT_NE(small.get(), first);
    auto again = std::make_unique<Derived>();
    EXPECT_EQ(again.get(), first);
  });
}

TEST(BlockCacheTest, BlocksMayBeFreedOnAnotherThread) {
  void* p = nullptr;
  OnFreshThread([&] { p = Allocate(512); });
  OnFreshThread([&] {
    Free(p, 512);
    EXPECT_EQ(CachedBlocksThisThread(), CachingEnabled() ? 1u : 0u);
  });  // and given back to malloc when that thread exits
}

}  // namespace
}  // namespace remora::mem
