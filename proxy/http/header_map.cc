#include "proxy/http/header_map.h"

#include <cstring>

namespace remora::http {

void HeaderMap::Add(absl::string_view name, absl::string_view value) {
  state_ = State::kNone;
  AppendName(name);
  AppendValue(value);
  state_ = State::kNone;
}

void HeaderMap::Set(absl::string_view name, absl::string_view value) {
  int first = Find(name);
  if (first < 0) {
    Add(name, value);
    return;
  }
  for (size_t i = entries_.size(); i-- > static_cast<size_t>(first) + 1;) {
    if (IEquals(this->name(i), name)) entries_.erase(entries_.begin() + static_cast<ptrdiff_t>(i));
  }
  SetValue(static_cast<size_t>(first), value);
}

void HeaderMap::SetValue(size_t i, absl::string_view value) {
  state_ = State::kNone;
  Entry& e = entries_[i];
  // In place when it fits (a budget rewritten shorter, a count); else the new bytes go at the
  // end and the old ones wait for Clear(), like a removed field's.
  if (value.size() > e.value_len) {
    e.value_off = static_cast<uint32_t>(storage_.size());
    storage_.append(value.data(), value.size());
  } else if (!value.empty()) {
    std::memcpy(&storage_[e.value_off], value.data(), value.size());
  }
  e.value_len = static_cast<uint32_t>(value.size());
}

size_t HeaderMap::Remove(absl::string_view name) {
  size_t removed = 0;
  for (size_t i = entries_.size(); i-- > 0;) {
    if (IEquals(this->name(i), name)) {
      entries_.erase(entries_.begin() + static_cast<ptrdiff_t>(i));
      ++removed;
    }
  }
  // The bytes stay in storage_ until Clear(): maps are short-lived, and compaction would cost
  // more than the few bytes it saves.
  return removed;
}

void HeaderMap::RemoveAt(size_t i) { entries_.erase(entries_.begin() + static_cast<ptrdiff_t>(i)); }

int HeaderMap::Find(absl::string_view name) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (IEquals(this->name(i), name)) return static_cast<int>(i);
  }
  return -1;
}

absl::string_view HeaderMap::Get(absl::string_view name) const {
  int i = Find(name);
  return i < 0 ? absl::string_view() : value(static_cast<size_t>(i));
}

size_t HeaderMap::Count(absl::string_view name) const {
  size_t n = 0;
  for (size_t i = 0; i < entries_.size(); ++i) n += IEquals(this->name(i), name);
  return n;
}

void HeaderMap::Clear() {
  storage_.clear();
  entries_.clear();
  state_ = State::kNone;
}

void HeaderMap::AppendName(absl::string_view piece) {
  // A name and its value are contiguous in storage_, so a piece always extends the most recently
  // started part.
  if (state_ != State::kName) {
    auto off = static_cast<uint32_t>(storage_.size());
    entries_.push_back({off, 0, off, 0});
    state_ = State::kName;
  }
  storage_.append(piece.data(), piece.size());
  Entry& e = entries_.back();
  e.name_len += static_cast<uint32_t>(piece.size());
  e.value_off = e.name_off + e.name_len;
}

void HeaderMap::AppendValue(absl::string_view piece) {
  state_ = State::kValue;
  storage_.append(piece.data(), piece.size());
  entries_.back().value_len += static_cast<uint32_t>(piece.size());
}

}  // namespace remora::http
