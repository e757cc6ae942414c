#include "proxy/http/path.h"

#include <cstring>

#include "absl/strings/ascii.h"

namespace remora::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// Step 1 into *out: decode escaped unreserved characters, upper-case the rest.
bool DecodeUnreserved(absl::string_view path, std::string* out) {
  out->reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    if (path.size() - i < 3) return false;
    int hi = HexValue(path[i + 1]), lo = HexValue(path[i + 2]);
    if (hi < 0 || lo < 0) return false;
    char decoded = static_cast<char>(hi * 16 + lo);
    if (decoded == '\0') return false;
    if (IsUnreserved(decoded)) {
      out->push_back(decoded);
    } else {
      out->push_back('%');
      out->push_back(absl::ascii_toupper(static_cast<unsigned char>(path[i + 1])));
      out->push_back(absl::ascii_toupper(static_cast<unsigned char>(path[i + 2])));
    }
    i += 2;
  }
  return true;
}

}  // namespace

bool NormalizePath(absl::string_view target, std::string* out) {
  out->clear();
  size_t q = target.find('?');
  absl::string_view path = target.substr(0, q);
  absl::string_view query = q == absl::string_view::npos ? absl::string_view() : target.substr(q);
  if (path.empty() || path[0] != '/') {  // "*": nothing to normalise
    out->assign(target.data(), target.size());
    return true;
  }
  if (!DecodeUnreserved(path, out)) return false;
  // Steps 2 and 3, in place: empty segments (from "//") are dropped, "." skipped, ".." cuts the
  // output back to its previous '/'. The output never runs ahead of the input (w <= r), so
  // segments move left with memmove and no second buffer is needed.
  std::string& s = *out;
  const size_t n = s.size();
  size_t w = 0;  // output length
  size_t r = 0;  // input position, at a '/'
  bool trailing_slash = false;
  while (r < n) {
    ++r;  // the '/'
    size_t end = s.find('/', r);
    if (end == std::string::npos) end = n;
    const size_t len = end - r;
    const bool last = end == n;
    if (len == 0 || (len == 1 && s[r] == '.')) {
      trailing_slash = last;
    } else if (len == 2 && s[r] == '.' && s[r + 1] == '.') {
      w = w == 0 ? 0 : s.rfind('/', w - 1);
      trailing_slash = last;
    } else {
      s[w++] = '/';
      std::memmove(&s[w], &s[r], len);
      w += len;
      trailing_slash = false;
    }
    r = end;
  }
  s.resize(w);
  if (w == 0 || trailing_slash) s.push_back('/');
  s.append(query.data(), query.size());
  return true;
}

}  // namespace remora::http
