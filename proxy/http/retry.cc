#include "proxy/http/retry.h"

#include <algorithm>
#include <string>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace remora::http {

namespace {

using Kind = AttemptFailure::Kind;

// Failures where no response came back: every "upstream failed" condition covers them.
constexpr uint32_t kNoResponseConditions =
    config::kRetryOn5xx | config::kRetryOnGatewayError | config::kRetryOnReset;

absl::InsecureBitGen& ThreadBitGen() {
  thread_local absl::InsecureBitGen gen;
  return gen;
}

}  // namespace

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (!value.empty() && std::all_of(value.begin(), value.end(), absl::ascii_isdigit)) {
    uint32_t seconds;
    // Too many digits to hold is still a wait, a very long one.
    if (value.size() > 9 || !absl::SimpleAtoi(value, &seconds)) return absl::InfiniteDuration();
    return absl::Seconds(seconds);
  }
  // IMF-fixdate, the one form a sender may generate: "Sun, 06 Nov 1994 08:49:37 GMT".
  absl::Time when;
  std::string err;
  if (!absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", value, absl::UTCTimeZone(), &when, &err)) {
    return std::nullopt;
  }
  return std::max(absl::ZeroDuration(), when - now);
}

RetryState::RetryState(const config::RetryPolicy& policy, const config::Cluster& cluster,
                       upstream::RetryBudget& budget, bool idempotent,
                       event::Dispatcher& dispatcher)
    : policy_(policy),
      cluster_(cluster),
      budget_(budget),
      dispatcher_(dispatcher),
      idempotent_(idempotent) {}

RetryState::~RetryState() { Cancel(); }

bool RetryState::Covers(const AttemptFailure& f) const {
  uint32_t on = policy_.retry_on;
  switch (f.kind) {
    case Kind::kConnectFailure:
      return (on & (config::kRetryOnConnectFailure | config::kRetryOn5xx |
                    config::kRetryOnGatewayError)) != 0;
    case Kind::kRefusedStream:
      return (on & (config::kRetryOnRefusedStream | config::kRetryOn5xx |
                    config::kRetryOnGatewayError)) != 0;
    case Kind::kReset:
    case Kind::kPerTryTimeout:
      return (on & kNoResponseConditions) != 0;
    case Kind::kResponse:
      break;
  }
  if ((on & config::kRetryOn5xx) && f.status >= 500 && f.status <= 599) return true;
  if ((on & config::kRetryOnGatewayError) && f.status >= 502 && f.status <= 504) return true;
  if (std::find(policy_.status_codes.begin(), policy_.status_codes.end(), f.status) !=
      policy_.status_codes.end()) {
    return true;
  }
  return f.grpc_status >= 0 && f.grpc_status < 32 && (policy_.grpc_statuses >> f.grpc_status) & 1;
}

RetryState::Decision RetryState::Decide(const AttemptFailure& f, int64_t active_requests) {
  // The attempt that failed is over: its slot (if it was a retry) goes back first.
  ReleaseSlot();
  if (attempts_ >= policy_.attempts || !Covers(f)) return Decision::kNo;
  bool unprocessed = f.kind == Kind::kConnectFailure || f.kind == Kind::kRefusedStream;
  if (!unprocessed && !idempotent_) return Decision::kNo;
  if (f.retry_after && *f.retry_after > policy_.backoff_max) return Decision::kNo;
  if (!budget_.TryAcquire(cluster_.retry_budget_ratio, cluster_.retry_budget_min_concurrency,
                          cluster_.max_retries, active_requests)) {
    return Decision::kOverflow;
  }
  holds_slot_ = true;
  retry_after_ = f.retry_after;
  return Decision::kRetry;
}

absl::Duration RetryState::Schedule(absl::AnyInvocable<void()> retry) {
  absl::Duration wait;
  if (retry_after_) {
    wait = *retry_after_;
  } else {
    // min(max, base * 2^n) without overflow: past 2^20 the cap has long been reached.
    absl::Duration ceiling = std::min(
        policy_.backoff_max, policy_.backoff_base * (int64_t{1} << std::min(retries_, 20u)));
    wait = absl::Nanoseconds(absl::Uniform<int64_t>(absl::IntervalClosed, ThreadBitGen(), 0,
                                                    absl::ToInt64Nanoseconds(ceiling)));
  }
  ++retries_;
  retry_ = std::move(retry);
  if (timer_ == nullptr) {
    timer_ = dispatcher_.CreateTimer([this] {
      // Moved out first: the callback starts an attempt that may end the request (and this).
      absl::AnyInvocable<void()> run = std::move(retry_);
      run();
    });
  }
  timer_->Enable(wait);
  return wait;
}

void RetryState::Cancel() {
  if (timer_ != nullptr) timer_->Disable();
  retry_ = nullptr;
  ReleaseSlot();
}

void RetryState::ReleaseSlot() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  budget_.Release();
}

}  // namespace remora::http
