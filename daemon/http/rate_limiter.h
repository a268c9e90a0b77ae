// The global request budget: every request the process sends first takes a slot here.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>

#include "core/clock.h"

namespace lfh {

enum class RatePeriod { kSecond, kMinute };

/// A pacing token bucket of capacity 1: requests go out at least `period / requests` apart, so in
/// any window of one period at most `requests + 1` are sent, and there is no start-up burst (the
/// first request may go at once, the next one interval later). Cloud plans are per minute, a
/// small self-hosted server is better described per second; both are the same pacing.
///
/// A 429/503 with Retry-After feeds penalize_until(): no acquisition from any thread is granted
/// before that time, including threads already waiting.
///
/// Thread-safe; the Clock must outlive the budget. Waiting happens in Clock::sleep_until, so a
/// FakeClock makes every wait instant in tests.
class RequestBudget {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Stats {
    std::uint64_t granted = 0;  // acquisitions granted
    std::uint64_t waited = 0;   // of which had to wait ("throttle waits")
    Millis total_wait{0};       // total time acquirers spent waiting, all threads summed
  };

  /// `requests` per `per`. Must be > 0; a non-positive or non-finite value is treated as one
  /// request per period (the slowest sensible pace), never as "unlimited".
  RequestBudget(Clock& clock, double requests, RatePeriod per);
  RequestBudget(const RequestBudget&) = delete;
  RequestBudget& operator=(const RequestBudget&) = delete;

  /// Blocks until a request may be sent now and takes that slot. Returns false (taking nothing)
  /// if stop is requested before then.
  [[nodiscard]] bool acquire(std::stop_token stop);
  /// Same as acquire(), returning the Clock::mono() time at which the slot was granted.
  [[nodiscard]] std::optional<TimePoint> acquire_at(std::stop_token stop);

  /// No slot is granted before `not_before` (later calls can only extend the penalty).
  void penalize_until(TimePoint not_before);
  /// The current penalty end (a time in the past when there is none).
  TimePoint penalized_until() const;

  /// Minimum spacing between two granted slots at the configured rate.
  std::chrono::nanoseconds interval() const { return interval_; }

  /// The adaptive share of the configured rate in use, in [1/64, 1] (values outside are
  /// clamped): slots are then interval() / scale apart. Never above the configured rate.
  void set_rate_scale(double scale);
  double rate_scale() const;
  Stats stats() const;

 private:
  Clock& clock_;
  const std::chrono::nanoseconds interval_;
  mutable std::mutex mu_;
  TimePoint next_slot_{};      // earliest time the next slot may be granted
  TimePoint penalty_until_{};  // earliest time any slot may be granted
  double scale_ = 1.0;         // adaptive share of the configured rate
  std::chrono::nanoseconds scaled_interval_;
  Stats stats_;
};

}  // namespace lfh
