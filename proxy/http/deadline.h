#pragma once

// Deadline propagation: a request's remaining time budget as it arrives and as it is passed on,
// so a whole chain of services gives up together instead of each hop waiting out its own timeout
// for a caller that has already gone.
//
// The budget is relative (clocks of different hosts never meet): gRPC carries it in
// `grpc-timeout` (up to 8 digits and a unit: H, M, S, m, u, n), other HTTP in
// `x-remora-deadline-ms` (whole milliseconds). Each hop rewrites it to what is left when it sends
// the request on, rounded down, so no hop's deadline is later than its caller's.

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxy/http/header_map.h"

namespace remora::http {

inline constexpr absl::string_view kDeadlineHeader = "x-remora-deadline-ms";

// grpc-timeout's value ("250m"); false when it is not one.
bool ParseGrpcTimeout(absl::string_view value, absl::Duration* out);
// The grpc-timeout value for `budget`, rounded down to what the 8 digits can say.
std::string GrpcTimeoutValue(absl::Duration budget);

// The budget the request arrived with: grpc-timeout for gRPC (x-remora-deadline-ms otherwise, or
// when it has no grpc-timeout); nullopt when there is none or it does not parse.
std::optional<absl::Duration> InboundBudget(const HeaderMap& headers, bool grpc);
// Sets the budget for the next hop in the header of the request's kind (and drops the other).
void SetOutboundBudget(HeaderMap& headers, bool grpc, absl::Duration remaining);

}  // namespace remora::http
