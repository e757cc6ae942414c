#pragma once

// An ordered, case-preserving list of header fields for the data path (DESIGN.md 4a). Names and
// values are copied into one storage string owned by the map, so a request's whole header block
// costs no allocation once the map has grown to its working size: Clear() keeps the capacity, and
// a connection reuses its maps from one request to the next.
//
// Lookups compare names case-insensitively; a name is kept as it arrived (HTTP/1 -> HTTP/1 keeps
// the peer's spelling). Several fields may share a name; Get() returns the first.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "proxy/common/block_cache.h"

namespace remora::http {

// Field names and tokens compare case-insensitively (RFC 9110 5.1). Inline because it runs for
// every field of every message, several times (lookups, hop-by-hop checks); most calls end at the
// length check.
inline bool IEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

class HeaderMap {
 public:
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  absl::string_view name(size_t i) const {
    return View(entries_[i].name_off, entries_[i].name_len);
  }
  absl::string_view value(size_t i) const {
    return View(entries_[i].value_off, entries_[i].value_len);
  }

  void Add(absl::string_view name, absl::string_view value);
  // Leaves one field called `name`, with `value`: the first one if there was any (its value
  // replaced in place), else a new one at the end.
  void Set(absl::string_view name, absl::string_view value);
  // Replaces field i's value (`value` must not point into this map).
  void SetValue(size_t i, absl::string_view value);
  // Removes every field called `name`; returns how many went.
  size_t Remove(absl::string_view name);
  void RemoveAt(size_t i);
  // The index of the first field called `name`, or -1.
  int Find(absl::string_view name) const;
  bool Has(absl::string_view name) const { return Find(name) >= 0; }
  // The first value of `name`, or "" when absent.
  absl::string_view Get(absl::string_view name) const;
  size_t Count(absl::string_view name) const;
  void Clear();
  // Room for `bytes` of names and values in `fields` fields without growing: a map that is not
  // reused (an HTTP/2 stream's) allocates twice instead of once per doubling.
  void Reserve(size_t bytes, size_t fields) {
    storage_.reserve(bytes);
    entries_.reserve(fields);
  }

  // Incremental building for parsers whose input arrives in pieces: a name in one or more
  // pieces, FinishName(), then its value in zero or more pieces; the next AppendName starts the
  // next field.
  void AppendName(absl::string_view piece);
  void FinishName() { state_ = State::kValue; }
  void AppendValue(absl::string_view piece);

 private:
  struct Entry {
    uint32_t name_off;
    uint32_t name_len;
    uint32_t value_off;
    uint32_t value_len;
  };
  absl::string_view View(uint32_t off, uint32_t len) const { return {storage_.data() + off, len}; }

  // A stream's head and trailers maps come and go with it: their memory comes from the block
  // cache, like the stream's.
  std::basic_string<char, std::char_traits<char>, mem::CachedAllocator<char>> storage_;
  std::vector<Entry, mem::CachedAllocator<Entry>> entries_;
  enum class State { kNone, kName, kValue };
  State state_ = State::kNone;
};

// Splits a comma-separated header value (Connection, Transfer-Encoding, ...) into trimmed,
// non-empty tokens and calls fn(token) for each; stops early when fn returns false.
template <typename Fn>
void ForEachToken(absl::string_view value, Fn fn) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == absl::string_view::npos) comma = value.size();
    absl::string_view t = value.substr(start, comma - start);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty() && !fn(t)) return;
    start = comma + 1;
  }
}

}  // namespace remora::http
