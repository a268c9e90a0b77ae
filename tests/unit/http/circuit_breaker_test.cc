#include "http/circuit_breaker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace lfh {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

CircuitBreakerOptions options() {
  CircuitBreakerOptions o;
  o.failure_threshold = 5;
  o.probe_base = seconds(1);
  o.probe_cap = seconds(60);
  return o;
}

void fail_times(CircuitBreaker& breaker, int n) {
  for (int i = 0; i < n; ++i) breaker.record_failure();
}

}  // namespace

TEST_CASE("breaker starts closed and lets everything through") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
  CHECK(breaker.allow_request());
  CHECK_FALSE(breaker.allow_probe());
  CHECK_FALSE(breaker.next_probe_at().has_value());
  CHECK(breaker.counters().probes == 0);
}

TEST_CASE("breaker opens only after consecutive failures") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 4);
  breaker.record_success();
  fail_times(breaker, 4);
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
  CHECK(breaker.counters().consecutive_failures == 4);
  breaker.record_failure();
  CHECK(breaker.state() == CircuitBreaker::State::kOpen);
  CHECK(breaker.counters().opens == 1);
  CHECK(breaker.next_probe_at() == clock.mono() + seconds(1));
  CHECK_FALSE(breaker.allow_request());
}

TEST_CASE("breaker allows one probe per interval") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 5);
  clock.advance(milliseconds(999));
  CHECK_FALSE(breaker.allow_probe());
  clock.advance(milliseconds(1));
  CHECK(breaker.allow_probe());
  CHECK_FALSE(breaker.allow_probe());
  CHECK_FALSE(breaker.allow_request());
  CHECK(breaker.counters().probes == 1);
  // A probe whose result never comes back does not block probing forever.
  clock.advance(seconds(1));
  CHECK(breaker.allow_request());
  CHECK(breaker.counters().probes == 2);
}

TEST_CASE("failed probes double the interval up to the cap") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 5);
  std::vector<long long> intervals_s;
  for (int i = 0; i < 10; ++i) {
    auto next = *breaker.next_probe_at();
    intervals_s.push_back(std::chrono::duration_cast<seconds>(next - clock.mono()).count());
    CHECK(clock.sleep_until(next, std::stop_token()));
    REQUIRE(breaker.allow_probe());
    breaker.record_failure();
  }
  CHECK(intervals_s == std::vector<long long>{1, 2, 4, 8, 16, 32, 60, 60, 60, 60});
  CHECK(breaker.counters().opens == 1);
  CHECK(breaker.counters().probes == 10);
}

TEST_CASE("a successful probe closes the breaker and resets the schedule") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 5);
  for (int i = 0; i < 3; ++i) {
    CHECK(clock.sleep_until(*breaker.next_probe_at(), std::stop_token()));
    REQUIRE(breaker.allow_probe());
    breaker.record_failure();
  }
  CHECK(clock.sleep_until(*breaker.next_probe_at(), std::stop_token()));
  REQUIRE(breaker.allow_probe());
  breaker.record_success();
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
  CHECK(breaker.allow_request());
  CHECK(breaker.counters().consecutive_failures == 0);

  fail_times(breaker, 4);
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
  breaker.record_failure();
  CHECK(breaker.counters().opens == 2);
  CHECK(breaker.next_probe_at() == clock.mono() + seconds(1));  // back to the base interval
}

TEST_CASE("late results of requests sent before opening change nothing") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 5);
  auto scheduled = breaker.next_probe_at();
  breaker.record_success();  // a straggler: no probe is outstanding
  CHECK(breaker.state() == CircuitBreaker::State::kOpen);
  fail_times(breaker, 3);
  CHECK(breaker.next_probe_at() == scheduled);
}

TEST_CASE("concurrent callers get exactly one probe") {
  FakeClock clock;
  CircuitBreaker breaker(clock, options());
  fail_times(breaker, 5);
  clock.advance(seconds(1));
  std::atomic<int> granted{0};
  {
    std::vector<std::jthread> callers;
    for (int i = 0; i < 8; ++i) {
      callers.emplace_back([&] {
        for (int j = 0; j < 100; ++j) {
          if (breaker.allow_request()) ++granted;
        }
      });
    }
  }
  CHECK(granted == 1);
  CHECK(breaker.counters().probes == 1);
}

TEST_CASE("an hour-long outage costs a handful of probes") {
  FakeClock clock;
  CircuitBreakerOptions o = options();
  o.probe_cap = std::chrono::minutes(5);
  CircuitBreaker breaker(clock, o);
  const auto outage_end = clock.mono() + std::chrono::hours(1);
  int sent = 0;
  while (true) {
    if (breaker.allow_request()) {
      ++sent;
      if (clock.mono() < outage_end) {
        breaker.record_failure();
      } else {
        breaker.record_success();
        break;
      }
    } else {
      REQUIRE(clock.sleep_until(*breaker.next_probe_at(), std::stop_token()));
    }
    REQUIRE(sent < 1000);
  }
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
  // 5 failures to open, then probes at 1, 2, 4, ... 256 s and every 5 minutes after that.
  CHECK(sent - 5 == static_cast<int>(breaker.counters().probes));
  CHECK(breaker.counters().probes <= 22);
  CHECK(clock.mono() - outage_end <= std::chrono::minutes(5));
}

}  // namespace lfh
