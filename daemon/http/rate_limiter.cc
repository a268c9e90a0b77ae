#include "http/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace lfh {
namespace {

std::chrono::nanoseconds interval_for(double requests, RatePeriod per) {
  const std::chrono::nanoseconds period = per == RatePeriod::kMinute
                                              ? std::chrono::nanoseconds(std::chrono::minutes(1))
                                              : std::chrono::nanoseconds(std::chrono::seconds(1));
  if (!std::isfinite(requests) || requests <= 0) return period;
  // Round up: a slightly slower pace never breaks the budget, a slightly faster one could.
  double nanos = std::ceil(static_cast<double>(period.count()) / requests);
  return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(std::max(nanos, 1.0)));
}

}  // namespace

RequestBudget::RequestBudget(Clock& clock, double requests, RatePeriod per)
    : clock_(clock), interval_(interval_for(requests, per)), scaled_interval_(interval_) {}

void RequestBudget::set_rate_scale(double scale) {
  if (!std::isfinite(scale)) scale = 1.0;
  scale = std::clamp(scale, 1.0 / 64, 1.0);
  std::lock_guard lock(mu_);
  scale_ = scale;
  scaled_interval_ = std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(
      std::ceil(static_cast<double>(interval_.count()) / scale)));
}

double RequestBudget::rate_scale() const {
  std::lock_guard lock(mu_);
  return scale_;
}

bool RequestBudget::acquire(std::stop_token stop) {
  return acquire_at(std::move(stop)).has_value();
}

std::optional<RequestBudget::TimePoint> RequestBudget::acquire_at(std::stop_token stop) {
  const TimePoint entered = clock_.mono();
  while (true) {
    if (stop.stop_requested()) return std::nullopt;
    TimePoint slot;
    {
      std::lock_guard lock(mu_);
      const TimePoint now = clock_.mono();
      slot = std::max({now, next_slot_, penalty_until_});
      if (slot <= now) {
        next_slot_ = now + scaled_interval_;
        auto waited = std::chrono::duration_cast<Millis>(now - entered);
        ++stats_.granted;
        if (now > entered) ++stats_.waited;
        stats_.total_wait += waited;
        return now;
      }
    }
    // Nothing is reserved while sleeping: on waking every waiter re-reads the slot and the
    // penalty, so a penalty that arrived meanwhile holds back threads that were already asleep,
    // and a stopped waiter leaves nothing behind. Deadlines are rounded up to whole milliseconds
    // so that a millisecond-resolution clock always reaches them.
    if (!clock_.sleep_until(std::chrono::ceil<Millis>(slot), stop)) return std::nullopt;
  }
}

void RequestBudget::penalize_until(TimePoint not_before) {
  std::lock_guard lock(mu_);
  penalty_until_ = std::max(penalty_until_, not_before);
}

RequestBudget::TimePoint RequestBudget::penalized_until() const {
  std::lock_guard lock(mu_);
  return penalty_until_;
}

RequestBudget::Stats RequestBudget::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lfh
