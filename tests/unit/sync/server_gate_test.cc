#include "sync/server_gate.h"

#include <doctest/doctest.h>

#include <chrono>

#include "core/clock.h"
#include "support/fake_langfuse_api.h"

namespace lfh {
namespace {

using namespace std::chrono_literals;

Status server_error() {
  return Status::Error(ErrorKind::kRetryable, "HTTP 503").with_detail(503);
}

TEST_CASE("the breaker closes on an API call that works, not on health alone") {
  FakeClock clock;
  testing::FakeLangfuseApi api;
  CircuitBreaker breaker(clock, CircuitBreakerOptions{2, 1s, 1s});
  ServerGate gate(api, breaker, clock);
  gate.report(server_error());
  gate.report(server_error());
  REQUIRE(breaker.state() == CircuitBreaker::State::kOpen);
  // Health answers (it checks nothing) while the API still fails twice.
  api.fail_next("projects", server_error(), 2);
  CHECK(gate.wait_until_closed(1h, {}) == ServerGate::Wait::kClosed);
  CHECK(api.calls("projects") == 3);  // two failed probes, then one that worked
  CHECK(api.calls("health") == 3);
  CHECK(breaker.state() == CircuitBreaker::State::kClosed);
}

TEST_CASE("a failing health probe skips the API call; a 404 health does not") {
  FakeClock clock;
  testing::FakeLangfuseApi api;
  CircuitBreaker breaker(clock, CircuitBreakerOptions{1, 1s, 1s});
  ServerGate gate(api, breaker, clock);
  gate.report(server_error());
  REQUIRE(breaker.state() == CircuitBreaker::State::kOpen);
  api.fail_next("health", server_error(), 1);
  api.fail_next("health", Status::Error(ErrorKind::kNotFound, "HTTP 404").with_detail(404), 1);
  CHECK(gate.wait_until_closed(1h, {}) == ServerGate::Wait::kClosed);
  CHECK(api.calls("health") == 2);
  CHECK(api.calls("projects") == 1);  // only after the 404: an old server without /health
}

}  // namespace
}  // namespace lfh
