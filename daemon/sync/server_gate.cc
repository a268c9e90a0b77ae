#include "sync/server_gate.h"

#include "core/log.h"

namespace lfh {

bool is_server_failure(const Status& status) {
  return !status.ok() && status.kind() == ErrorKind::kRetryable;
}

void ServerGate::report(const Status& status) {
  if (status.ok()) {
    breaker_.record_success();
  } else if (is_server_failure(status)) {
    const bool was_closed = breaker_.state() == CircuitBreaker::State::kClosed;
    breaker_.record_failure();
    if (was_closed && breaker_.state() == CircuitBreaker::State::kOpen) {
      log::warn("server failing ({}); circuit breaker open: pausing all requests",
                status.message());
    }
  }
}

ServerGate::Wait ServerGate::wait_until_closed(Millis max_wait, std::stop_token stop) {
  const auto deadline = clock_.mono() + max_wait;
  while (breaker_.state() == CircuitBreaker::State::kOpen) {
    auto next = breaker_.next_probe_at();
    if (next && *next > clock_.mono()) {
      if (*next > deadline) return Wait::kTooLong;
      if (!clock_.sleep_until(*next, stop)) return Wait::kStopped;
    }
    if (!breaker_.allow_probe()) continue;
    auto health = api_.health(stop);
    if (stop.stop_requested()) return Wait::kStopped;
    if (health.ok()) {
      breaker_.record_success();
      log::info("server answers again; circuit breaker closed");
    } else {
      breaker_.record_failure();
      log::info("health probe failed: {}", health.status().message());
    }
  }
  return Wait::kClosed;
}

}  // namespace lfh
