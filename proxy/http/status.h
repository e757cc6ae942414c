#pragma once

// Reason phrases for status lines the proxy writes itself.

#include "absl/strings/string_view.h"

namespace remora::http {

// The RFC 9110 reason phrase of `status`, or "Unknown" for a code without one.
absl::string_view StatusText(int status);

}  // namespace remora::http
