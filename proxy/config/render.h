#pragma once

// Config -> JSON, for `GET /config` on the admin API. Uses the
// same field names as the YAML (docs/config.md), durations as strings ("5s", "250ms") and
// addresses as strings ("127.0.0.1:8080", "[::1]:8080"), so the output decodes back through
// DecodeConfig to an equal Config. Every field is written, defaults included, except the optional
// strings admin.token and admin.unix_socket, which are left out when empty.
//
// The decoder admits only ASCII in every string field, so dump() on the result cannot throw
// nlohmann's invalid-UTF-8 error. Not for the data path: it builds a JSON tree (DESIGN.md 4a).

#include <nlohmann/json.hpp>

#include "proxy/config/config.h"

namespace remora::config {

// With redact_secrets, a non-empty admin.token is replaced by "<redacted>" (the admin API always
// redacts; a token must not leak through a read-only endpoint or a log line).
nlohmann::json ConfigToJson(const Config& c, bool redact_secrets);

}  // namespace remora::config
