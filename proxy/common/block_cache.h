#pragma once

// Per-thread caches of freed heap blocks, by size, for objects made and freed on every request:
// HTTP/2 streams and their state, a stream's filter objects, nghttp2's per-frame allocations
// (through the codec's nghttp2_mem). Under load hundreds of each are alive at once and come and go
// in bursts of a connection's streams; malloc's own per-thread cache holds seven blocks a size, so
// most of them went through its slow paths. Here a freed block waits on its thread's list (up to
// kMaxBlocks a size; Trim() gives back half of what is left idle) and the next allocation of that
// size takes it back.
//
// Blocks may be freed on another thread than the one that made them (they join that thread's
// cache). A thread's cache is freed when the thread exits.
//
// In sanitizer builds every call goes straight to malloc/free, so use-after-free is still caught.

#include <cstddef>

namespace remora::mem {

void* Allocate(size_t size);
// `size` as given to Allocate.
void Free(void* p, size_t size);
// Frees half of the calling thread's idle blocks (a burst's leftovers go back a bit at a time).
void TrimThisThread();
// Blocks cached on the calling thread (for tests), and whether this build caches at all.
size_t CachedBlocksThisThread();
bool CachingEnabled();

// Base of a class whose objects are made per request: its new/delete use the block cache.
// (Sized delete: deleting through a base with a virtual destructor passes the object's size.)
struct Cached {
  static void* operator new(size_t size) { return Allocate(size); }
  static void operator delete(void* p, size_t size) { Free(p, size); }
};

// A standard allocator on the block cache, for containers that belong to per-request objects.
template <class T>
struct CachedAllocator {
  using value_type = T;
  CachedAllocator() = default;
  template <class U>
  CachedAllocator(const CachedAllocator<U>&) {}  // NOLINT: rebinding is implicit by design
  T* allocate(size_t n) { return static_cast<T*>(Allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { Free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const CachedAllocator<U>&) const {
    return true;
  }
};

}  // namespace remora::mem
