// libFuzzer target for the admin request parser: any bytes, fed in any split, must end in a
// complete request or an error status from the documented set, never a crash, hang or leak, and
// the same bytes fed whole or byte-by-byte must reach the same verdict.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "proxy/admin/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using remora::admin::RequestParser;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  RequestParser whole;
  RequestParser::State a = whole.Feed(bytes);

  RequestParser split;
  RequestParser::State b = RequestParser::State::kIncomplete;
  for (size_t i = 0; i < bytes.size() && b == RequestParser::State::kIncomplete; ++i) {
    b = split.Feed(bytes.substr(i, 1));
  }
  if (a != b) std::abort();
  if (a == RequestParser::State::kError) {
    int s = whole.error_status();
    if (s != 400 && s != 413 && s != 431) std::abort();
    if (s != split.error_status()) std::abort();
  }
  if (a == RequestParser::State::kComplete) {
    const auto& r = whole.request();
    if (r.method.empty() || r.path != split.request().path ||
        r.body.size() > RequestParser::kMaxBodyBytes) {
      std::abort();
    }
    (void)r.QueryParam("level");
  }
  return 0;
}
