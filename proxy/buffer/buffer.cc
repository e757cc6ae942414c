#include "proxy/buffer/buffer.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <new>

namespace remora::buffer {
namespace {

void Unref(Slab* slab) {
  if (--slab->refs != 0) return;
  if (slab->pool != nullptr) {
    slab->pool->Release(slab);
  } else {
    std::free(slab);
  }
}

Slab* NewHeapSlab(uint32_t capacity) {
  void* mem = std::malloc(sizeof(Slab) + capacity);
  if (mem == nullptr) throw std::bad_alloc();
  return new (mem) Slab{0, capacity, nullptr};
}

}  // namespace

Slice::Slice(Slab* slab, uint32_t offset, uint32_t len) : slab_(slab), offset_(offset), len_(len) {
  ++slab_->refs;
}

Slice& Slice::operator=(Slice&& o) noexcept {
  if (this != &o) {
    Reset();
    slab_ = o.slab_;
    offset_ = o.offset_;
    len_ = o.len_;
    o.slab_ = nullptr;
    o.offset_ = o.len_ = 0;
  }
  return *this;
}

void Slice::Reset() {
  if (slab_ != nullptr) Unref(slab_);
  slab_ = nullptr;
  offset_ = len_ = 0;
}

SlabPool& SlabPool::ForThisThread() {
  thread_local SlabPool pool;
  return pool;
}

SlabPool::~SlabPool() {
  for (Slab* s : free_) std::free(s);
}

Slab* SlabPool::Acquire() {
  peak_ = std::max(peak_, ++outstanding_);
  if (!free_.empty()) {
    Slab* s = free_.back();
    free_.pop_back();
    return s;
  }
  void* mem = std::malloc(sizeof(Slab) + kSlabBytes);
  if (mem == nullptr) throw std::bad_alloc();
  return new (mem) Slab{0, kSlabBytes, this};
}

void SlabPool::Release(Slab* slab) {
  --outstanding_;
  // Keep enough for the recent peak: in use + free never exceeds it (or kMinFree).
  if (free_.size() < std::max(kMinFree, peak_ - outstanding_)) {
    free_.push_back(slab);
  } else {
    std::free(slab);
  }
}

void SlabPool::Trim() {
  if (free_.size() > kMinFree) {
    size_t keep = kMinFree + (free_.size() - kMinFree) / 2;
    for (size_t i = keep; i < free_.size(); ++i) std::free(free_[i]);
    free_.resize(keep);
  }
  peak_ = outstanding_ + free_.size();
}

ReadArena& ReadArena::ForThisThread() {
  thread_local ReadArena arena;
  return arena;
}

ReadArena::ReadArena() : pool_(SlabPool::ForThisThread()) {}

ReadArena::~ReadArena() {
  if (current_ != nullptr) Unref(current_);
}

std::pair<char*, size_t> ReadArena::Alloc() {
  if (current_ == nullptr || current_->capacity - fill_ < kMinTail) {
    if (current_ != nullptr) Unref(current_);
    current_ = pool_.Acquire();
    current_->refs = 1;
    fill_ = 0;
  }
  return {current_->data() + fill_, current_->capacity - fill_};
}

Slice ReadArena::Commit(size_t n) {
  if (n == 0) return Slice();
  assert(current_ != nullptr && fill_ + n <= current_->capacity);
  Slice s(current_, fill_, static_cast<uint32_t>(n));
  fill_ += static_cast<uint32_t>(n);
  return s;
}

void Buffer::Append(Slice&& slice) {
  if (slice.size() == 0) return;
  length_ += slice.size();
  slices_.push_back(std::move(slice));
}

void Buffer::Append(absl::string_view bytes) {
  while (!bytes.empty()) {
    // Small copies go to the thread's read arena tail (shared slab); large ones to their own block.
    Slice s;
    if (bytes.size() <= ReadArena::kMinTail) {
      auto [mem, cap] = ReadArena::ForThisThread().Alloc();
      size_t n = std::min(cap, bytes.size());
      std::memcpy(mem, bytes.data(), n);
      s = ReadArena::ForThisThread().Commit(n);
    } else {
      // Slice lengths are 32-bit: larger inputs take several blocks.
      constexpr size_t kMaxBlock = size_t{1} << 30;
      const auto n = static_cast<uint32_t>(std::min(bytes.size(), kMaxBlock));
      Slab* slab = NewHeapSlab(n);
      std::memcpy(slab->data(), bytes.data(), n);
      s = Slice(slab, 0, n);
    }
    bytes.remove_prefix(s.size());
    Append(std::move(s));
  }
}

void Buffer::AppendSharedCompacting(const Buffer& other) {
  for (size_t i = 0; i < other.slice_count(); ++i) {
    const Slice& s = other.slice(i);
    if (s.size() >= kCompactBelow) {
      Append(s.Share());
    } else {
      AppendCompact(s.view());
    }
  }
}

void Buffer::AppendCompact(absl::string_view bytes) {
  if (slices_.size() > head_ && slices_.back().TryExtend(bytes)) {
    length_ += bytes.size();
    return;
  }
  Slab* slab = NewHeapSlab(kCompactSlabBytes);
  std::memcpy(slab->data(), bytes.data(), bytes.size());
  Append(Slice(slab, 0, static_cast<uint32_t>(bytes.size())));
}

void Buffer::Move(Buffer& other) {
  if (empty() && head_ == 0) {
    std::swap(slices_, other.slices_);
    std::swap(head_, other.head_);
    std::swap(length_, other.length_);
    return;
  }
  for (size_t i = other.head_; i < other.slices_.size(); ++i) {
    Append(std::move(other.slices_[i]));
  }
  other.slices_.clear();
  other.head_ = 0;
  other.length_ = 0;
}

bool Slice::TryExtend(absl::string_view bytes) {
  if (slab_ == nullptr || slab_->pool != nullptr || slab_->refs != 1) return false;
  if (bytes.size() > slab_->capacity - offset_ - len_) return false;
  std::memcpy(slab_->data() + offset_ + len_, bytes.data(), bytes.size());
  len_ += static_cast<uint32_t>(bytes.size());
  return true;
}

void Buffer::MoveCompacting(Buffer& other) {
  for (size_t i = other.head_; i < other.slices_.size(); ++i) {
    Slice& s = other.slices_[i];
    if (s.size() >= kCompactBelow) {
      Append(std::move(s));
    } else {
      AppendCompact(s.view());
    }
  }
  other.slices_.clear();
  other.head_ = 0;
  other.length_ = 0;
}

size_t Buffer::MoveSlices(Buffer& dst, size_t max_slices) {
  if (slices_.size() - head_ <= max_slices) {
    size_t n = slices_.size() - head_;
    dst.Move(*this);
    return n;
  }
  for (size_t i = 0; i < max_slices; ++i) {
    length_ -= slices_[head_].size();
    dst.Append(std::move(slices_[head_++]));
  }
  return max_slices;
}

void Buffer::MoveFront(Buffer& dst, size_t n) {
  assert(n <= length_);
  while (n > 0) {
    Slice& front = slices_[head_];
    if (front.size() <= n) {
      size_t size = front.size();
      n -= size;
      length_ -= size;
      dst.Append(std::move(front));  // leaves `front` empty
      ++head_;
    } else {
      dst.Append(front.Sub(0, n));
      front.RemovePrefix(n);
      length_ -= n;
      n = 0;
    }
  }
  Drain(0);  // compacts the drained slots
}

void Buffer::Drain(size_t n) {
  assert(n <= length_);
  length_ -= n;
  while (n > 0) {
    Slice& front = slices_[head_];
    if (front.size() <= n) {
      n -= front.size();
      front.Reset();
      ++head_;
    } else {
      front.RemovePrefix(n);
      n = 0;
    }
  }
  if (head_ == slices_.size()) {
    slices_.clear();
    head_ = 0;
  } else if (head_ > 32 && head_ * 2 > slices_.size()) {
    slices_.erase(slices_.begin(), slices_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

size_t Buffer::FillIovecs(struct iovec* iov, size_t max) const {
  size_t n = 0;
  for (size_t i = head_; i < slices_.size() && n < max; ++i, ++n) {
    iov[n].iov_base = const_cast<char*>(slices_[i].data());
    iov[n].iov_len = slices_[i].size();
  }
  return n;
}

std::string Buffer::ToString() const {
  std::string out;
  out.reserve(length_);
  for (size_t i = head_; i < slices_.size(); ++i) out.append(slices_[i].data(), slices_[i].size());
  return out;
}

}  // namespace remora::buffer
