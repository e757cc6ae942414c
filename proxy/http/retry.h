#pragma once

// One request's retry state under its route's policy (config::RetryPolicy; docs/http.md
// "Retries"): whether a failed attempt goes again, and when.
//
// A failed attempt is retried when all of these hold:
//   - attempts are left (policy.attempts counts the first one);
//   - retry_on names the failure: a connect failure, a refused stream, a reset or per-try
//     timeout (no response head), or a response whose status or grpc-status it lists;
//   - the request is safe to repeat: nothing was processed (connect failure, refused stream), or
//     it is idempotent (RFC 9110 method, Idempotency-Key, or an `idempotent` route);
//   - the response's Retry-After, if any, is within backoff.max (a server asking for longer gets
//     its answer passed on, Retry-After included, rather than a retry too early);
//   - the cluster's retry budget has room (else the failure stands and counts as overflow).
// The wait before the n-th retry (n = 0, 1, ...) is full jitter, uniform in
// [0, min(max, base * 2^n)], or exactly the Retry-After when one was given.
//
// The router owns one RetryState per request that has a policy; the state holds the budget slot of
// the retry in flight (released when that attempt ends: at the next Decide or on destruction) and
// the backoff timer, so both end with the request. Runs on the simulated dispatcher in unit tests.

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxy/config/config.h"
#include "proxy/event/dispatcher.h"
#include "proxy/upstream/retry_budget.h"

namespace remora::http {

// How an attempt failed.
struct AttemptFailure {
  enum class Kind : uint8_t {
    kConnectFailure,  // connect refused or timed out: the request never left
    kRefusedStream,   // HTTP/2: refused unprocessed (REFUSED_STREAM, above a GOAWAY's last id)
    kReset,           // closed or reset before a whole response head
    kPerTryTimeout,   // no response head within per_try_timeout
    kResponse,        // a response head: `status`, and `grpc_status` if it carried one
  };
  Kind kind;
  int status = 0;
  int grpc_status = -1;
  std::optional<absl::Duration> retry_after;
};

// A Retry-After value (RFC 9110 10.2.3): delay-seconds, or an HTTP-date taken relative to
// `now` (wall clock; a date in the past is no wait). Nothing for a value that is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

class RetryState {
 public:
  enum class Decision {
    kRetry,     // Schedule() the next attempt
    kNo,        // the policy does not retry this failure
    kOverflow,  // it would, but the cluster's retry budget is spent
  };

  // `idempotent`: the request may be repeated once it may have reached the upstream.
  RetryState(const config::RetryPolicy& policy, const config::Cluster& cluster,
             upstream::RetryBudget& budget, bool idempotent, event::Dispatcher& dispatcher);
  ~RetryState();
  RetryState(const RetryState&) = delete;
  RetryState& operator=(const RetryState&) = delete;

  // An attempt is starting (the first included).
  void OnAttempt() { ++attempts_; }
  // The attempt that just failed: retry it? `active_requests`: the cluster's requests in flight.
  Decision Decide(const AttemptFailure& failure, int64_t active_requests);
  // After kRetry: runs `retry` when the backoff has passed. Returns the wait.
  absl::Duration Schedule(absl::AnyInvocable<void()> retry);
  // Stops a pending backoff and gives back a held budget slot (the request is over).
  void Cancel();

  uint32_t attempts() const { return attempts_; }
  absl::Duration per_try_timeout() const { return policy_.per_try_timeout; }
  uint32_t buffer_limit_bytes() const { return policy_.buffer_limit_bytes; }
  bool backing_off() const { return timer_ != nullptr && timer_->Enabled(); }
  // Whether the policy names this failure at all (before attempts, idempotency and budget).
  bool Covers(const AttemptFailure& failure) const;

 private:
  void ReleaseSlot();

  const config::RetryPolicy& policy_;
  const config::Cluster& cluster_;
  upstream::RetryBudget& budget_;
  event::Dispatcher& dispatcher_;
  std::unique_ptr<event::Timer> timer_;
  absl::AnyInvocable<void()> retry_;
  std::optional<absl::Duration> retry_after_;  // of the failure being retried
  uint32_t attempts_ = 0;
  uint32_t retries_ = 0;  // scheduled so far
  bool idempotent_;
  bool holds_slot_ = false;
};

}  // namespace remora::http
