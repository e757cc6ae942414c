#include "proxy/server/active_connection.h"

namespace remora::server {

void ConnectionList::Add(ActiveConnection* c) {
  c->list_ = this;
  c->prev_ = nullptr;
  c->next_ = head_;
  if (head_ != nullptr) head_->prev_ = c;
  head_ = c;
  size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void ConnectionList::Remove(ActiveConnection* c) {
  if (c->list_ != this) return;
  if (c->prev_ != nullptr) c->prev_->next_ = c->next_;
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  if (head_ == c) head_ = c->next_;
  c->prev_ = c->next_ = nullptr;
  c->list_ = nullptr;
  size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

}  // namespace remora::server
