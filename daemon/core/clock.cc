#include "core/clock.h"

namespace lfh {

bool SystemClock::sleep_until(std::chrono::steady_clock::time_point deadline,
                              std::stop_token stop) {
  std::unique_lock lock(mu_);
  // wait_until with a stop_token wakes on request_stop(); the predicate is only "stopped".
  cv_.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested();
}

SysTime FakeClock::now() const {
  std::lock_guard lock(mu_);
  return wall_;
}

std::chrono::steady_clock::time_point FakeClock::mono() const {
  std::lock_guard lock(mu_);
  return mono_;
}

bool FakeClock::sleep_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  if (stop.stop_requested()) return false;
  std::lock_guard lock(mu_);
  if (deadline > mono_) {
    auto d = std::chrono::duration_cast<Millis>(deadline - mono_);
    mono_ += d;
    wall_ += d;
    slept_ += d;
  }
  return true;
}

void FakeClock::advance(Millis d) {
  std::lock_guard lock(mu_);
  mono_ += d;
  wall_ += d;
}

Millis FakeClock::slept() const {
  std::lock_guard lock(mu_);
  return slept_;
}

}  // namespace lfh
