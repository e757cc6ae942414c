#pragma once

// Text -> Config. The only way a Config is made: the CLI (`remora validate`, `remora proxy`),
// SIGHUP reload, and later the admin API and the registry all go through DecodeConfig, so every
// layer is validated by the same code.
//
// Errors are collected, not stopped at: a user fixing a file wants every problem at once. Each
// error names the 1-based line of the offending node and the field path
// (`clusters[2].connect_timeout`), and formats as `FILE:LINE: field.path: message`.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proxy/config/config.h"

namespace remora::config {

struct ConfigError {
  int line = 0;      // 1-based; 0 when the error concerns the whole document
  std::string path;  // "listeners[0].address"; empty for document-level errors
  std::string message;

  // "FILE:LINE: path: message" (path and its ": " omitted when empty). Line 0 has no position to
  // show, so it formats as "FILE: path: message" (usually "FILE: message").
  std::string Format(absl::string_view file) const;
};

// Parses YAML (or JSON, a subset of YAML 1.2's flow style) and decodes it. An empty document
// (nothing but comments) is an error, "empty config", with line 0: a truncated or unmounted file
// must not silently start a proxy with every default; `{}` asks for the defaults explicitly.
// Errors are sorted by line (document-level errors, line 0, first). Returns true and fills
// *out when there are no errors; otherwise returns false, appends to *errors and leaves *out
// unspecified.
bool DecodeConfig(absl::string_view text, Config* out, std::vector<ConfigError>* errors);

// Reads the file and calls DecodeConfig. An unreadable file, or one over 16 MiB, is one error
// with line 0.
bool LoadConfigFile(const std::string& path, Config* out, std::vector<ConfigError>* errors);

// Parses "100ms", "1.5s", "2m", "1h" (and "0s"). Exposed for reuse by later decoders. A unit is
// required; components may be chained ("1m30s"); no sign, no spaces. Precision is 1ns (finer
// fractions are truncated). Call it qualified, config::ParseDuration: with an absl::Duration*
// argument, argument-dependent lookup also finds absl::ParseDuration and the call is ambiguous.
bool ParseDuration(absl::string_view text, absl::Duration* out);

// The inverse of ParseDuration for non-negative finite durations: the largest unit that is exact
// ("5s", "250ms", "2m", "1h"), else seconds with a fraction ("1.0005s"). ParseDuration reads the
// result back to the same value. Used by render.h and in messages.
std::string DurationToString(absl::Duration d);

// Parses "127.0.0.1:80" / "[::1]:80". Port 0 is allowed (callers that forbid it check). The ip
// is stored in canonical form ("[0:0::1]:80" gives "::1"), so equal addresses compare equal.
bool ParseSocketAddress(absl::string_view text, SocketAddress* out);

}  // namespace remora::config
