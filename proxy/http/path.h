#pragma once

// Path normalisation, applied to every request before routing (docs/http.md). Routes, and the
// authorization that will rely on them, see one canonical spelling of a path, so `/admin`,
// `/./admin`, `//admin` and `/%61dmin` cannot be told apart by a client trying to slip past a
// prefix rule. Steps, in order, on the path only (the query is kept as sent):
//   1. percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded; other escapes
//      are kept, with their hex digits upper-cased (`%2f` stays an escape: it is data, not a
//      separator);
//   2. runs of '/' become one;
//   3. dot segments are removed (RFC 3986 5.2.4); `..` never climbs above the root.

#include <string>

#include "absl/strings/string_view.h"

namespace remora::http {

// Writes the normalised form of `target` (path plus optional ?query) to `out`. Returns false for
// a malformed escape (`%` not followed by two hex digits) or a decoded NUL: the request is bad.
bool NormalizePath(absl::string_view target, std::string* out);

// The path of a request target, without its query: what routes and authorization rules match.
inline absl::string_view PathWithoutQuery(absl::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace remora::http
