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
    // /api/public/health checks nothing by default (no database, no auth): it only says the
    // process is up. The breaker closes on a real API call that succeeds.
    auto health = api_.health(stop);
    if (stop.stop_requested()) return Wait::kStopped;
    if (!health.ok() && health.status().kind() != ErrorKind::kNotFound) {
      breaker_.record_failure();
      log::info("health probe failed: {}", health.status().message());
      continue;
    }
    auto project = api_.project(stop);
    if (stop.stop_requested()) return Wait::kStopped;
    if (project.ok() || !is_server_failure(project.status())) {
      // Any answer that is not a server failure (a 401 included) shows the API works again;
      // what the answer means is for the caller's next request to find out.
      breaker_.record_success();
      log::info("server answers API calls again; circuit breaker closed");
    } else {
      breaker_.record_failure();
      log::info("API probe failed ({}health answered): {}", health.ok() ? "" : "no ",
                project.status().message());
    }
  }
  return Wait::kClosed;
}

}  // namespace lfh
