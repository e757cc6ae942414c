// libFuzzer target for the first-bytes classifier and the ClientHello SNI reader of transparent
// listeners (client-controlled bytes, read before anything else): never a crash or an
// out-of-bounds read; a decision made on a prefix stands for every longer input (only kNeedMore
// may change); an SNI found is lower case and no longer than the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "proxy/network/protocol_detect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using remora::network::DetectProtocol;
  using remora::network::Protocol;
  using remora::network::ReadClientHelloSni;
  using remora::network::SniResult;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  Protocol whole = DetectProtocol(bytes);
  for (size_t n = 0; n <= bytes.size(); ++n) {
    Protocol p = DetectProtocol(bytes.substr(0, n));
    if (p != Protocol::kNeedMore && p != whole) std::abort();
  }
  std::string sni;
  if (ReadClientHelloSni(bytes, &sni) == SniResult::kFound) {
    if (sni.empty() || sni.size() > bytes.size()) std::abort();
    if (absl::AsciiStrToLower(sni) != sni) std::abort();
  }
  return 0;
}
