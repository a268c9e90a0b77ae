// Time as a seam: every module that reads the time or waits takes a Clock&.
//
// Production code uses SystemClock; tests use FakeClock, whose sleeps return at once after moving
// the fake time forward, so a retry schedule of hours runs in microseconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace lfh {

using SysTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  /// Wall-clock time (UTC), used for timestamps stored and compared with the server's.
  virtual SysTime now() const = 0;
  /// Monotonic time for intervals (rate limiting, timeouts). Never goes backwards.
  virtual std::chrono::steady_clock::time_point mono() const = 0;
  /// Sleeps until mono() >= deadline or until stop is requested. Returns false when stopped.
  /// Thread-safe.
  virtual bool sleep_until(std::chrono::steady_clock::time_point deadline,
                           std::stop_token stop) = 0;
  bool sleep_for(Millis d, std::stop_token stop) { return sleep_until(mono() + d, stop); }
};

class SystemClock final : public Clock {
 public:
  SysTime now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point mono() const override {
    return std::chrono::steady_clock::now();
  }
  bool sleep_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override;

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
};

/// Deterministic clock for tests. sleep_until advances both timelines to the deadline (if it is
/// in the future) and returns immediately; advance() moves time by hand. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(SysTime start = SysTime(std::chrono::seconds(1'700'000'000))) : wall_(start) {}
  SysTime now() const override;
  std::chrono::steady_clock::time_point mono() const override;
  bool sleep_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override;
  void advance(Millis d);
  /// Total time spent in sleep_until (what a real process would have waited).
  Millis slept() const;

 private:
  mutable std::mutex mu_;
  SysTime wall_;
  std::chrono::steady_clock::time_point mono_{std::chrono::hours(1)};
  Millis slept_{0};
};

}  // namespace lfh
