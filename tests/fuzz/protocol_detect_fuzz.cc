// libFuzzer target for the first-bytes classifier and the ClientHello reader of transparent
// listeners (client-controlled bytes, read before anything else): never a crash or an
// out-of-bounds read; a decision made on a prefix stands for every longer input (only kNeedMore
// may change); an SNI found is lower case, and it and every ALPN name are non-empty and no
// longer than the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "proxy/network/protocol_detect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using remora::network::ClientHelloInfo;
  using remora::network::DetectProtocol;
  using remora::network::HelloResult;
  using remora::network::Protocol;
  using remora::network::ReadClientHello;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  Protocol whole = DetectProtocol(bytes);
  for (size_t n = 0; n <= bytes.size(); ++n) {
    Protocol p = DetectProtocol(bytes.substr(0, n));
    if (p != Protocol::kNeedMore && p != whole) std::abort();
  }
  ClientHelloInfo hello;
  if (ReadClientHello(bytes, &hello) == HelloResult::kFound) {
    if (hello.sni.size() > bytes.size()) std::abort();
    if (absl::AsciiStrToLower(hello.sni) != hello.sni) std::abort();
    for (const std::string& p : hello.alpn) {
      if (p.empty() || p.size() > bytes.size()) std::abort();
    }
  } else if (!hello.sni.empty() || !hello.alpn.empty()) {
    std::abort();  // nothing is reported from what was not read whole
  }
  return 0;
}
