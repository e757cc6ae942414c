#include "proxy/http/deadline.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace remora::http {

namespace {

// 1 to `max_digits` ASCII digits, nothing else (no sign, no space: both budget headers say so).
bool ParseDigits(absl::string_view s, size_t max_digits, int64_t* out) {
  if (s.empty() || s.size() > max_digits) return false;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return true;
}

}  // namespace

bool ParseGrpcTimeout(absl::string_view value, absl::Duration* out) {
  // gRPC over HTTP/2: TimeoutValue is 1 to 8 ASCII digits, then one unit character.
  int64_t n = 0;
  if (value.empty() || !ParseDigits(value.substr(0, value.size() - 1), 8, &n)) return false;
  switch (value.back()) {
    case 'H':
      *out = absl::Hours(n);
      return true;
    case 'M':
      *out = absl::Minutes(n);
      return true;
    case 'S':
      *out = absl::Seconds(n);
      return true;
    case 'm':
      *out = absl::Milliseconds(n);
      return true;
    case 'u':
      *out = absl::Microseconds(n);
      return true;
    case 'n':
      *out = absl::Nanoseconds(n);
      return true;
    default:
      return false;
  }
}

std::string GrpcTimeoutValue(absl::Duration budget) {
  constexpr int64_t kMax = 99999999;  // 8 digits
  int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(budget));
  if (ms <= kMax) return absl::StrCat(ms, "m");
  int64_t s = absl::ToInt64Seconds(budget);
  if (s <= kMax) return absl::StrCat(s, "S");
  return absl::StrCat(std::min<int64_t>(absl::ToInt64Hours(budget), kMax), "H");
}

std::optional<absl::Duration> InboundBudget(const HeaderMap& headers, bool grpc) {
  absl::Duration d;
  if (grpc) {
    int i = headers.Find("grpc-timeout");
    if (i >= 0) {
      if (ParseGrpcTimeout(headers.value(static_cast<size_t>(i)), &d)) return d;
      return std::nullopt;
    }
  }
  int i = headers.Find(kDeadlineHeader);
  if (i < 0) return std::nullopt;
  int64_t ms = 0;
  if (!ParseDigits(headers.value(static_cast<size_t>(i)), 12, &ms)) return std::nullopt;
  return absl::Milliseconds(ms);
}

void SetOutboundBudget(HeaderMap& headers, bool grpc, absl::Duration remaining) {
  if (grpc) {
    headers.Remove(kDeadlineHeader);
    headers.Set("grpc-timeout", GrpcTimeoutValue(remaining));
  } else {
    int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(remaining));
    char buf[absl::numbers_internal::kFastToBufferSize];
    char* end = absl::numbers_internal::FastIntToBuffer(ms, buf);
    headers.Set(kDeadlineHeader, absl::string_view(buf, static_cast<size_t>(end - buf)));
  }
}

}  // namespace remora::http
