// libFuzzer target for the config decoder: arbitrary bytes through yaml-cpp, our value tree and
// the schema decoder must never crash, hang or leak an exception, and every error must carry a
// sane line. A config that decodes must render and dump as JSON (ASCII only, so dump() cannot
// throw) and decode again from that JSON.
//
// Build (clang-14, its own tree; see DESIGN.md section 8):
//   clang++-14 -std=c++20 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/config_fuzz.cc \
//     proxy/config/*.cc <absl libs> -lyaml-cpp -o config_fuzz
//   ./config_fuzz tests/fuzz/corpus/config

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proxy/config/decode.h"
#include "proxy/config/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using remora::config::Config;
  using remora::config::ConfigError;
  using remora::config::DecodeConfig;

  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  Config config;
  std::vector<ConfigError> errors;
  if (!DecodeConfig(text, &config, &errors)) {
    if (errors.empty()) std::abort();  // failure must say why
    int previous_line = 0;
    for (const ConfigError& e : errors) {
      if (e.line < 0 || e.line < previous_line || e.message.empty()) std::abort();
      previous_line = e.line;
      (void)e.Format("fuzz.yaml");
    }
    return 0;
  }
  if (!errors.empty()) std::abort();
  const std::string json = remora::config::ConfigToJson(config, /*redact_secrets=*/false).dump();
  (void)remora::config::ConfigToJson(config, /*redact_secrets=*/true).dump();
  // What we render must decode again: the admin API hands GET /config output back to PUT.
  Config again;
  if (!DecodeConfig(json, &again, &errors)) std::abort();
  if (remora::config::ConfigToJson(again, false).dump() != json) std::abort();
  return 0;
}
