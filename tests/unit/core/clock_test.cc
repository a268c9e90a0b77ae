#include "core/clock.h"

#include <doctest/doctest.h>

namespace lfh {

TEST_CASE("FakeClock sleeps advance time without waiting") {
  FakeClock clock;
  std::stop_source stop;
  auto start_wall = clock.now();
  auto start = clock.mono();
  CHECK(clock.sleep_for(std::chrono::hours(2), stop.get_token()));
  CHECK(clock.mono() - start == std::chrono::hours(2));
  CHECK(clock.now() - start_wall == std::chrono::hours(2));
  CHECK(clock.slept() == std::chrono::hours(2));
  stop.request_stop();
  CHECK_FALSE(clock.sleep_for(std::chrono::hours(1), stop.get_token()));
  CHECK(clock.mono() - start == std::chrono::hours(2));
}

TEST_CASE("SystemClock sleep returns false at once when stop was requested") {
  SystemClock clock;
  std::stop_source stop;
  stop.request_stop();
  CHECK_FALSE(clock.sleep_for(std::chrono::hours(1), stop.get_token()));
}

}  // namespace lfh
