#include "http/circuit_breaker.h"

#include <algorithm>

namespace lfh {
namespace {

CircuitBreakerOptions sanitized(CircuitBreakerOptions options) {
  options.failure_threshold = std::max(options.failure_threshold, 1);
  options.probe_base = std::max(options.probe_base, Millis(1));
  options.probe_cap = std::max(options.probe_cap, options.probe_base);
  return options;
}

}  // namespace

CircuitBreaker::CircuitBreaker(Clock& clock, CircuitBreakerOptions options)
    : clock_(clock), options_(sanitized(options)) {}

void CircuitBreaker::record_success() {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen && !probe_outstanding_) return;
  state_ = State::kClosed;
  consecutive_failures_ = 0;
  probe_outstanding_ = false;
}

void CircuitBreaker::record_failure() {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.mono();
  if (state_ == State::kClosed) {
    if (++consecutive_failures_ < options_.failure_threshold) return;
    state_ = State::kOpen;
    ++counters_.opens;
    probe_interval_ = options_.probe_base;
    next_probe_at_ = now + probe_interval_;
    probe_outstanding_ = false;
    return;
  }
  if (!probe_outstanding_) return;
  probe_outstanding_ = false;
  probe_interval_ =
      probe_interval_ > options_.probe_cap / 2 ? options_.probe_cap : probe_interval_ * 2;
  next_probe_at_ = now + probe_interval_;
}

bool CircuitBreaker::grant_probe_locked(TimePoint now) {
  if (now < next_probe_at_) return false;
  // Push the next probe a whole interval away right now, so concurrent callers (and a probe
  // whose result is never recorded) cannot turn one probe into many.
  next_probe_at_ = now + probe_interval_;
  probe_outstanding_ = true;
  ++counters_.probes;
  return true;
}

bool CircuitBreaker::allow_probe() {
  std::lock_guard lock(mu_);
  if (state_ == State::kClosed) return false;
  return grant_probe_locked(clock_.mono());
}

bool CircuitBreaker::allow_request() {
  std::lock_guard lock(mu_);
  if (state_ == State::kClosed) return true;
  return grant_probe_locked(clock_.mono());
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::optional<CircuitBreaker::TimePoint> CircuitBreaker::next_probe_at() const {
  std::lock_guard lock(mu_);
  if (state_ == State::kClosed) return std::nullopt;
  return next_probe_at_;
}

CircuitBreaker::Counters CircuitBreaker::counters() const {
  std::lock_guard lock(mu_);
  Counters c = counters_;
  c.consecutive_failures = consecutive_failures_;
  return c;
}

}  // namespace lfh
