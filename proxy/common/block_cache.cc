#include "proxy/common/block_cache.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define REMORA_NO_BLOCK_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REMORA_NO_BLOCK_CACHE 1
#endif
#endif

namespace remora::mem {
namespace {

constexpr size_t kGranule = 16;
constexpr size_t kMaxCached = 4096;  // larger blocks go straight to malloc
constexpr size_t kClasses = kMaxCached / kGranule;
constexpr size_t kMaxBlocks = 1024;  // per size: a few connections' worth of streams

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible and constant-initialised, so reaching the thread's cache is a plain TLS
// access; the blocks go back to malloc at thread exit through Reaper, made on the first block
// cached.
struct Cache {
  struct List {
    FreeBlock* head;
    size_t count;
    size_t low;  // fewest blocks on the list since the last trim
  };

  void* Allocate(size_t size) {
    if (size == 0 || size > kMaxCached) return Malloc(size);
    size_t cls = (size - 1) / kGranule;
    List& l = lists[cls];
    // Always the class's whole size: the block may be freed into a cache (this thread's, or
    // another's) and serve any size of its class.
    if (l.head == nullptr || dead) return Malloc((cls + 1) * kGranule);
    FreeBlock* b = l.head;
    l.head = b->next;
    --l.count;
    l.low = std::min(l.low, l.count);
    return b;
  }

  void Free(void* p, size_t size) {
    if (p == nullptr) return;
    if (size == 0 || size > kMaxCached || dead) return std::free(p);
    List& l = lists[(size - 1) / kGranule];
    if (l.count >= kMaxBlocks) return std::free(p);
    if (!reaper_made) MakeReaper();
    auto* b = static_cast<FreeBlock*>(p);
    b->next = l.head;
    l.head = b;
    ++l.count;
  }

  void Trim() {
    for (List& l : lists) {
      // What stayed unused since the last trim is idle: half of it goes.
      for (size_t n = l.low / 2; n > 0 && l.head != nullptr; --n) {
        FreeBlock* b = l.head;
        l.head = b->next;
        --l.count;
        std::free(b);
      }
      l.low = l.count;
    }
  }

  void ReleaseAll() {
    for (List& l : lists) {
      while (l.head != nullptr) {
        FreeBlock* b = l.head;
        l.head = b->next;
        std::free(b);
      }
      l.count = l.low = 0;
    }
  }

  size_t Cached() const {
    size_t n = 0;
    for (const List& l : lists) n += l.count;
    return n;
  }

  static void* Malloc(size_t size) {
    void* p = std::malloc(size == 0 ? 1 : size);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  static void MakeReaper();

  List lists[kClasses];
  bool reaper_made;
  bool dead;  // the thread is exiting: no more caching
};

thread_local constinit Cache cache{};

struct Reaper {
  ~Reaper() {
    cache.ReleaseAll();
    cache.dead = true;
  }
};

void Cache::MakeReaper() {
  static thread_local Reaper reaper;  // constructed here, destroyed at thread exit
  (void)reaper;
  cache.reaper_made = true;
}

}  // namespace

#ifdef REMORA_NO_BLOCK_CACHE
void* Allocate(size_t size) { return Cache::Malloc(size); }
void Free(void* p, size_t) { std::free(p); }
void TrimThisThread() {}
size_t CachedBlocksThisThread() { return 0; }
bool CachingEnabled() { return false; }
#else
void* Allocate(size_t size) { return cache.Allocate(size); }
void Free(void* p, size_t size) { cache.Free(p, size); }
void TrimThisThread() { cache.Trim(); }
size_t CachedBlocksThisThread() { return cache.Cached(); }
bool CachingEnabled() { return true; }
#endif

}  // namespace remora::mem
