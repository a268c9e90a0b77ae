#include "http/rate_limiter.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

namespace lfh {
namespace {

using TimePoint = RequestBudget::TimePoint;

// The largest number of grants inside any window [t, t + width] (closed: the strictest reading).
std::size_t max_in_window(std::vector<TimePoint> grants, std::chrono::nanoseconds width) {
  std::sort(grants.begin(), grants.end());
  std::size_t best = 0;
  std::size_t first = 0;
  for (std::size_t last = 0; last < grants.size(); ++last) {
    while (grants[last] - grants[first] > width) ++first;
    best = std::max(best, last - first + 1);
  }
  return best;
}

std::vector<TimePoint> acquire_many(RequestBudget& budget, int count) {
  std::vector<TimePoint> grants;
  std::stop_source stop;
  for (int i = 0; i < count; ++i) {
    auto granted = budget.acquire_at(stop.get_token());
    REQUIRE(granted.has_value());
    grants.push_back(*granted);
  }
  return grants;
}

// A FakeClock that runs a hook the first time someone sleeps: lets a test act "while" a thread
// waits, deterministically.
class HookedClock final : public Clock {
 public:
  std::function<void()> on_first_sleep;
  SysTime now() const override { return inner_.now(); }
  TimePoint mono() const override { return inner_.mono(); }
  bool sleep_until(TimePoint deadline, std::stop_token stop) override {
    if (on_first_sleep) std::exchange(on_first_sleep, nullptr)();
    return inner_.sleep_until(deadline, stop);
  }

 private:
  FakeClock inner_;
};

}  // namespace

TEST_CASE("budget paces requests with no start-up burst") {
  FakeClock clock;
  const TimePoint start = clock.mono();
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  CHECK(budget.interval() == std::chrono::milliseconds(200));

  std::vector<TimePoint> grants = acquire_many(budget, 20);
  CHECK(grants.front() == start);  // the first request goes at once
  for (std::size_t i = 1; i < grants.size(); ++i) {
    CHECK(grants[i] - grants[i - 1] == std::chrono::milliseconds(200));
  }
  CHECK(max_in_window(grants, std::chrono::seconds(1)) <= 6);
  CHECK(max_in_window(grants, std::chrono::milliseconds(999)) <= 5);

  RequestBudget::Stats stats = budget.stats();
  CHECK(stats.granted == 20);
  CHECK(stats.waited == 19);
  CHECK(stats.total_wait == std::chrono::milliseconds(19 * 200));
  CHECK(clock.slept() == stats.total_wait);
}

TEST_CASE("budget holds at most one token after a long idle time") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  (void)acquire_many(budget, 3);
  clock.advance(std::chrono::minutes(10));
  const TimePoint idle_end = clock.mono();
  std::vector<TimePoint> grants = acquire_many(budget, 3);
  CHECK(grants[0] == idle_end);
  CHECK(grants[1] == idle_end + std::chrono::milliseconds(200));
  CHECK(grants[2] == idle_end + std::chrono::milliseconds(400));
}

TEST_CASE("budget per minute matches fixed one-minute windows") {
  FakeClock clock;
  const TimePoint start = clock.mono();
  RequestBudget budget(clock, 30, RatePeriod::kMinute);
  CHECK(budget.interval() == std::chrono::seconds(2));
  std::vector<TimePoint> grants = acquire_many(budget, 100);
  CHECK(max_in_window(grants, std::chrono::minutes(1)) <= 31);
  // Fixed windows [k min, (k+1) min) from the first request, as Cloud counts: exactly 30.
  for (int window = 0; window < 3; ++window) {
    auto from = start + std::chrono::minutes(window);
    auto to = from + std::chrono::minutes(1);
    auto count = std::count_if(grants.begin(), grants.end(),
                               [&](TimePoint t) { return t >= from && t < to; });
    CHECK(count == 30);
  }
}

TEST_CASE("budget with an uneven rate rounds the interval up, never down") {
  FakeClock clock;
  RequestBudget budget(clock, 3, RatePeriod::kSecond);
  CHECK(budget.interval() >= std::chrono::nanoseconds(333'333'333));
  std::vector<TimePoint> grants = acquire_many(budget, 30);
  CHECK(max_in_window(grants, std::chrono::seconds(1)) <= 4);
  for (std::size_t i = 1; i < grants.size(); ++i) {
    CHECK(grants[i] - grants[i - 1] >= budget.interval());
  }

  RequestBudget half(clock, 0.5, RatePeriod::kSecond);
  CHECK(half.interval() == std::chrono::seconds(2));
  RequestBudget seven_a_minute(clock, 7, RatePeriod::kMinute);
  std::vector<TimePoint> slow = acquire_many(seven_a_minute, 30);
  CHECK(max_in_window(slow, std::chrono::minutes(1)) <= 8);
}

TEST_CASE("budget treats a non-positive or invalid rate as one request per period") {
  FakeClock clock;
  CHECK(RequestBudget(clock, 0, RatePeriod::kSecond).interval() == std::chrono::seconds(1));
  CHECK(RequestBudget(clock, -4, RatePeriod::kMinute).interval() == std::chrono::minutes(1));
  CHECK(RequestBudget(clock, std::numeric_limits<double>::quiet_NaN(), RatePeriod::kSecond)
            .interval() == std::chrono::seconds(1));
}

TEST_CASE("budget holds across threads: any one-second window has at most rate + 1 grants") {
  FakeClock clock;
  RequestBudget budget(clock, 10, RatePeriod::kSecond);
  constexpr int kThreads = 6;
  constexpr int kEach = 40;
  std::mutex mu;
  std::vector<TimePoint> grants;
  std::vector<std::jthread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto granted = budget.acquire_at(std::stop_token());
        std::lock_guard lock(mu);
        if (granted) grants.push_back(*granted);
      }
    });
  }
  workers.clear();  // joins
  REQUIRE(grants.size() == kThreads * kEach);
  CHECK(max_in_window(grants, std::chrono::seconds(1)) <= 11);
  std::sort(grants.begin(), grants.end());
  for (std::size_t i = 1; i < grants.size(); ++i) {
    CHECK(grants[i] - grants[i - 1] >= std::chrono::milliseconds(100));
  }
  CHECK(budget.stats().granted == kThreads * kEach);
}

TEST_CASE("penalize_until holds back every later acquisition") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  (void)acquire_many(budget, 1);
  const TimePoint penalty_end = clock.mono() + std::chrono::seconds(7);
  budget.penalize_until(penalty_end);
  // A shorter penalty later never shortens the wait.
  budget.penalize_until(clock.mono() + std::chrono::seconds(1));
  CHECK(budget.penalized_until() == penalty_end);

  std::mutex mu;
  std::vector<TimePoint> grants;
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < 3; ++t) {
      workers.emplace_back([&] {
        auto granted = budget.acquire_at(std::stop_token());
        std::lock_guard lock(mu);
        if (granted) grants.push_back(*granted);
      });
    }
  }
  REQUIRE(grants.size() == 3);
  for (TimePoint t : grants) CHECK(t >= penalty_end);
  CHECK(max_in_window(grants, std::chrono::milliseconds(199)) == 1);  // pacing still applies
}

TEST_CASE("a penalty that arrives while a thread waits also holds that thread back") {
  HookedClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  (void)acquire_many(budget, 1);
  const TimePoint penalty_end = clock.mono() + std::chrono::seconds(7);
  // The next acquisition has to wait 200 ms; during that wait another thread gets a 429.
  clock.on_first_sleep = [&] { budget.penalize_until(penalty_end); };
  auto granted = budget.acquire_at(std::stop_token());
  REQUIRE(granted.has_value());
  CHECK(*granted >= penalty_end);
  CHECK(*granted < penalty_end + std::chrono::milliseconds(2));
}

TEST_CASE("a stopped acquisition returns false and takes nothing") {
  FakeClock clock;
  RequestBudget budget(clock, 1, RatePeriod::kMinute);
  std::stop_source stop;
  stop.request_stop();
  CHECK_FALSE(budget.acquire(stop.get_token()));
  CHECK(budget.stats().granted == 0);
  // The stopped caller left no reservation behind: the next request still goes at once.
  const TimePoint before = clock.mono();
  CHECK(budget.acquire(std::stop_token()));
  CHECK(clock.mono() == before);
}

TEST_CASE("stop wakes a thread waiting for the budget (real clock)") {
  SystemClock clock;
  RequestBudget budget(clock, 1, RatePeriod::kMinute);
  REQUIRE(budget.acquire(std::stop_token()));
  std::stop_source stop;
  std::jthread waiter([&] { CHECK_FALSE(budget.acquire(stop.get_token())); });
  stop.request_stop();
  waiter.join();  // would take a minute if stop did not wake it
  CHECK(budget.stats().granted == 1);
}

}  // namespace lfh
