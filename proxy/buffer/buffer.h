#pragma once

// Zero-copy byte buffers for the data path (DESIGN.md 4a).
//
// Reads land in slabs: refcounted 64 KiB blocks from a per-thread pool. A read hands out the unused
// tail of the thread's current slab (ReadArena), and the bytes read become a Slice that references
// the slab. Slices move between buffers (downstream read -> upstream write) without copying, and a
// slab returns to its pool when the last slice referencing it is gone. Idle connections hold no
// slab: libuv asks for read memory only when a socket is readable.
//
// Threading: slabs, slices and buffers are single-thread objects. They never cross threads; a
// connection and every buffer it touches live on one worker.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"

namespace remora::buffer {

class SlabPool;

struct Slab {
  uint32_t refs;
  uint32_t capacity;
  SlabPool* pool;  // nullptr: a one-off heap block, freed when unreferenced
  char* data() { return reinterpret_cast<char*>(this + 1); }
};

// A reference to bytes [offset, offset+len) of a slab. Move-only owner of one slab reference.
class Slice {
 public:
  Slice() = default;
  Slice(Slab* slab, uint32_t offset, uint32_t len);  // takes a new reference
  // A moved-from slice is empty (size 0), never a dangling length over a null slab.
  Slice(Slice&& o) noexcept : slab_(o.slab_), offset_(o.offset_), len_(o.len_) {
    o.slab_ = nullptr;
    o.offset_ = o.len_ = 0;
  }
  Slice& operator=(Slice&& o) noexcept;
  Slice(const Slice&) = delete;
  Slice& operator=(const Slice&) = delete;
  ~Slice() { Reset(); }

  const char* data() const { return slab_->data() + offset_; }
  size_t size() const { return len_; }
  absl::string_view view() const { return {data(), len_}; }
  void RemovePrefix(size_t n) {
    offset_ += static_cast<uint32_t>(n);
    len_ -= static_cast<uint32_t>(n);
  }
  // Another reference to the same bytes (refcount +1; no copy).
  Slice Share() const { return Slice(slab_, offset_, len_); }
  // Another reference to bytes [off, off+n) of this slice (no copy). off + n <= size().
  Slice Sub(size_t off, size_t n) const {
    return Slice(slab_, offset_ + static_cast<uint32_t>(off), static_cast<uint32_t>(n));
  }
  // Appends `bytes` in place when this slice alone owns a private slab with room after its end.
  bool TryExtend(absl::string_view bytes);
  void Reset();

 private:
  Slab* slab_ = nullptr;
  uint32_t offset_ = 0;
  uint32_t len_ = 0;
};

// Per-thread pool of equally sized slabs. The free list keeps up to the recent peak of slabs in
// use: freeing them at once under steady load lets malloc return the pages to the kernel, and
// every later read then faults them in again. Trim(), called periodically by the owning thread,
// lets the free list shrink by half towards kMinFree, so a burst does not pin memory for long.
class SlabPool {
 public:
  static constexpr uint32_t kSlabBytes = 64 * 1024 - sizeof(Slab);
  static constexpr size_t kMinFree = 16;

  // The pool of the calling thread.
  static SlabPool& ForThisThread();

  SlabPool() = default;
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  ~SlabPool();
  Slab* Acquire();  // refs == 0
  void Release(Slab* slab);
  // Frees half of the free slabs above kMinFree and lowers the peak to what is in use now.
  void Trim();

  size_t slabs_outstanding() const { return outstanding_; }
  size_t slabs_free() const { return free_.size(); }

 private:
  std::vector<Slab*> free_;
  size_t outstanding_ = 0;
  size_t peak_ = 0;  // most slabs in use at once since the last Trim()
};

// Hands out read memory from the tail of the calling thread's current slab (libuv alloc_cb) and
// turns the bytes actually read into a Slice (read_cb). Alloc and Commit must pair up with no other
// Alloc in between, which libuv guarantees (read_cb follows alloc_cb on the same thread).
class ReadArena {
 public:
  static constexpr uint32_t kMinTail = 4096;
  static ReadArena& ForThisThread();

  // Takes the thread's pool first so that, thread-locals being destroyed in reverse order, the
  // pool outlives the arena that hands its last slab back.
  ReadArena();
  ~ReadArena();
  // Memory for one read.
  std::pair<char*, size_t> Alloc();
  // Claims the first `n` bytes of the last Alloc(). n == 0 claims nothing.
  Slice Commit(size_t n);

 private:
  SlabPool& pool_;
  Slab* current_ = nullptr;  // holds one reference while current
  uint32_t fill_ = 0;
};

// A queue of slices. Appending a Slice moves it in; appending a string_view copies it into slab
// memory (used for locally built bytes such as headers and admin responses).
class Buffer {
 public:
  Buffer() = default;
  // A moved-from buffer is empty and usable (the defaults would leave its length behind).
  Buffer(Buffer&& o) noexcept : slices_(std::move(o.slices_)), head_(o.head_), length_(o.length_) {
    o.slices_.clear();
    o.head_ = o.length_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      slices_ = std::move(o.slices_);
      head_ = o.head_;
      length_ = o.length_;
      o.slices_.clear();
      o.head_ = o.length_ = 0;
    }
    return *this;
  }

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }

  void Append(Slice&& slice);
  void Append(absl::string_view bytes);
  // Moves every slice of `other` to the end of this buffer; `other` becomes empty.
  void Move(Buffer& other);
  // Appends the contents of `other`, which keeps them: slices of kCompactBelow bytes or more are
  // shared (another reference, no copy), smaller ones copied as in MoveCompacting.
  void AppendSharedCompacting(const Buffer& other);
  // Like Move, but slices under kCompactBelow bytes are copied into private slabs. For bytes that
  // will wait in a backlog: a small slice of a shared read slab pins the whole 64 KiB slab, so a
  // stalled peer fed small reads would hold far more memory than its watermark counts.
  void MoveCompacting(Buffer& other);
  static constexpr size_t kCompactBelow = 8 * 1024;
  static constexpr uint32_t kCompactSlabBytes = 16 * 1024;
  // Moves up to `max_slices` whole slices from the front of this buffer to the end of `dst`.
  // Returns how many moved.
  size_t MoveSlices(Buffer& dst, size_t max_slices);
  // Moves the first n bytes (n <= length()) to the end of `dst`: whole slices move, a slice cut
  // in two is shared (no byte is copied).
  void MoveFront(Buffer& dst, size_t n);
  // Drops the first n bytes (n <= length()).
  void Drain(size_t n);
  void Clear() { Drain(length_); }

  // The slices in order, for parsers that hand out sub-slices of what they read (no copy).
  size_t slice_count() const { return slices_.size() - head_; }
  const Slice& slice(size_t i) const { return slices_[head_ + i]; }

  // Fills up to `max` iovecs from the front; returns how many were filled.
  size_t FillIovecs(struct iovec* iov, size_t max) const;
  // A copy of the contents (tests, small control-plane payloads; not the data path).
  std::string ToString() const;

 private:
  // Most buffers (a message's body, a frame's payload) hold one or two slices at a time: kept
  // inline, passing them along allocates nothing.
  // Copies `bytes` (under kCompactBelow) after the last slice if it is a private slab with room,
  // else into a new private slab.
  void AppendCompact(absl::string_view bytes);

  absl::InlinedVector<Slice, 2> slices_;
  size_t head_ = 0;  // slices_[0, head_) are drained and empty
  size_t length_ = 0;
};

}  // namespace remora::buffer
