// Stops all traffic to a failing server and lets a single probe through at growing intervals.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "core/clock.h"

namespace lfh {

struct CircuitBreakerOptions {
  int failure_threshold = 5;                    // consecutive failures that open the breaker
  Millis probe_base = std::chrono::seconds(1);  // first wait after opening
  Millis probe_cap = std::chrono::minutes(5);   // the wait doubles after each failed probe
};

/// Closed: requests flow; `failure_threshold` consecutive failures open it. Open: no traffic
/// except one probe per interval; the interval starts at probe_base and doubles after every
/// failed probe up to probe_cap. A successful probe closes it and resets everything.
///
/// What counts as a failure (5xx, 524, transport errors...) is the caller's decision; the
/// breaker only counts. Thread-safe; the Clock must outlive it.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen };
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Counters {
    std::uint64_t opens = 0;   // closed -> open transitions
    std::uint64_t probes = 0;  // probes granted by allow_probe / allow_request
    int consecutive_failures = 0;
  };

  CircuitBreaker(Clock& clock, CircuitBreakerOptions options);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  /// A request (or the probe) succeeded. Closed: resets the failure run. Open: closes the breaker
  /// only if a probe is outstanding; a late answer to a request sent before the breaker opened
  /// proves nothing about the server now.
  void record_success();
  /// A request (or the probe) failed. Closed: may open the breaker. Open with a probe outstanding:
  /// the probe failed, so the interval doubles (up to the cap) and counts from now. Open without
  /// a probe outstanding: a straggler, ignored.
  void record_failure();

  /// Open: true at most once per probe interval, and the caller must send exactly one probe and
  /// record its result. Closed: false (nothing to probe; send normally).
  [[nodiscard]] bool allow_probe();
  /// Closed: true. Open: same as allow_probe() (the request allowed is the probe).
  [[nodiscard]] bool allow_request();

  State state() const;
  /// When the next probe may go; nullopt while closed.
  std::optional<TimePoint> next_probe_at() const;
  Counters counters() const;

 private:
  bool grant_probe_locked(TimePoint now);

  Clock& clock_;
  const CircuitBreakerOptions options_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  Millis probe_interval_{0};
  TimePoint next_probe_at_{};
  bool probe_outstanding_ = false;
  Counters counters_;
};

}  // namespace lfh
