#include "proxy/http/path.h"

#include "absl/container/inlined_vector.h"
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
  std::string decoded;
  if (!DecodeUnreserved(path, &decoded)) return false;
  // Steps 2 and 3: empty segments (from "//") are dropped, "." skipped, ".." pops.
  absl::InlinedVector<absl::string_view, 16> kept;
  bool trailing_slash = false;
  absl::string_view rest(decoded);
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    size_t end = rest.find('/');
    absl::string_view seg = rest.substr(0, end);
    rest = end == absl::string_view::npos ? absl::string_view() : rest.substr(end);
    bool last = rest.empty();
    if (seg.empty() || seg == ".") {
      if (last) trailing_slash = true;
    } else if (seg == "..") {
      if (!kept.empty()) kept.pop_back();
      if (last) trailing_slash = true;
    } else {
      kept.push_back(seg);
      if (last) trailing_slash = false;
    }
  }
  for (absl::string_view seg : kept) {
    out->push_back('/');
    out->append(seg.data(), seg.size());
  }
  if (kept.empty() || trailing_slash) out->push_back('/');
  out->append(query.data(), query.size());
  return true;
}

}  // namespace remora::http
