#include "filters/trace_context/trace_context.h"

#include <sys/random.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proxy/server/snapshot.h"

namespace remora::filters {
namespace {

constexpr size_t kTraceparentLength = 55;

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

// A per-thread xorshift generator seeded from the kernel: ids must be unpredictable enough not to
// collide, not secret.
uint64_t Random64() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    while (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
    }
    return seed | 1;
  }();
  // xorshift64*
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

void Hex(uint64_t v, char* out, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  }
}

void NewTraceparent(char out[kTraceparentLength]) {
  std::memcpy(out, "00-", 3);
  uint64_t hi, lo, span;
  do {
    hi = Random64();
    lo = Random64();
  } while (hi == 0 && lo == 0);
  do span = Random64();
  while (span == 0);
  Hex(hi, out + 3, 16);
  Hex(lo, out + 19, 16);
  out[35] = '-';
  Hex(span, out + 36, 16);
  std::memcpy(out + 52, "-01", 3);
}

void NewRequestId(char out[36]) {
  uint64_t a = Random64(), b = Random64();
  a = (a & ~0xf000ULL) | 0x4000ULL;                  // version 4
  b = (b & ~(0xc000ULL << 48)) | (0x8000ULL << 48);  // variant 10
  char hex[32];
  Hex(a, hex, 16);
  Hex(b, hex + 16, 16);
  int o = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    out[o++] = hex[i];
  }
}

}  // namespace

const http::FilterFactory TraceContextFilter::kFactory{"trace_context",
                                                       &TraceContextFilter::Create};

std::unique_ptr<http::StreamFilter> TraceContextFilter::Create(
    const server::ListenerRuntime& listener) {
  return std::make_unique<TraceContextFilter>(listener.config->create_trace_context);
}

bool IsValidTraceparent(absl::string_view v) {
  // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
  if (v.size() < kTraceparentLength) return false;
  absl::string_view version = v.substr(0, 2);
  if (!IsLowerHex(version) || version == "ff") return false;
  if (version == "00" && v.size() != kTraceparentLength) return false;
  if (v.size() > kTraceparentLength && v[kTraceparentLength] != '-') return false;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  absl::string_view trace_id = v.substr(3, 32), parent_id = v.substr(36, 16),
                    flags = v.substr(53, 2);
  return IsLowerHex(trace_id) && IsLowerHex(parent_id) && IsLowerHex(flags) && !AllZero(trace_id) &&
         !AllZero(parent_id);
}

bool TraceparentFromB3(const http::HeaderMap& headers, char out[55]) {
  absl::string_view trace_id, span_id, sampled;
  absl::string_view single = headers.Get("b3");
  if (!single.empty()) {
    // b3: {trace}-{span}[-{sampled}[-{parent}]]
    size_t d1 = single.find('-');
    if (d1 == absl::string_view::npos) return false;
    trace_id = single.substr(0, d1);
    absl::string_view rest = single.substr(d1 + 1);
    size_t d2 = rest.find('-');
    span_id = rest.substr(0, d2);
    if (d2 != absl::string_view::npos) sampled = rest.substr(d2 + 1, 1);
  } else {
    trace_id = headers.Get("x-b3-traceid");
    span_id = headers.Get("x-b3-spanid");
    sampled = headers.Get("x-b3-sampled");
  }
  if ((trace_id.size() != 16 && trace_id.size() != 32) || span_id.size() != 16) return false;
  if (!IsLowerHex(trace_id) || !IsLowerHex(span_id) || AllZero(trace_id) || AllZero(span_id)) {
    return false;
  }
  std::memcpy(out, "00-", 3);
  // A 64-bit B3 trace id is left-padded with zeros to 128 bits.
  size_t pad = 32 - trace_id.size();
  std::memset(out + 3, '0', pad);
  std::memcpy(out + 3 + pad, trace_id.data(), trace_id.size());
  out[35] = '-';
  std::memcpy(out + 36, span_id.data(), 16);
  bool is_sampled = sampled == "1" || sampled == "d" || absl::EqualsIgnoreCase(sampled, "true");
  std::memcpy(out + 52, is_sampled || sampled.empty() ? "-01" : "-00", 3);
  return true;
}

http::FilterStatus TraceContextFilter::DecodeHeaders(http::RequestHead& head, bool) {
  http::HeaderMap& h = head.headers;
  size_t count = h.Count("traceparent");
  char buf[kTraceparentLength];
  if (count == 1 && IsValidTraceparent(h.Get("traceparent"))) {
    // Valid: passed on as it is.
  } else if (count > 0) {
    NewTraceparent(buf);
    h.Set("traceparent", absl::string_view(buf, kTraceparentLength));
    h.Remove("tracestate");
  } else if (TraceparentFromB3(h, buf)) {
    h.Add("traceparent", absl::string_view(buf, kTraceparentLength));
  } else if (create_missing_) {
    NewTraceparent(buf);
    h.Add("traceparent", absl::string_view(buf, kTraceparentLength));
    h.Remove("tracestate");
  }
  if (!h.Has("x-request-id")) {
    char id[36];
    NewRequestId(id);
    h.Add("x-request-id", absl::string_view(id, sizeof(id)));
  }
  return http::FilterStatus::kContinue;
}

}  // namespace remora::filters
