#include "http/backoff.h"

#include <doctest/doctest.h>

#include <climits>

namespace lfh {
namespace {

// Always returns the same draw.
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(double value) : value_(value) {}
  double uniform01() override { return value_; }

 private:
  double value_;
};

constexpr Millis kBase = std::chrono::seconds(1);
constexpr Millis kCap = std::chrono::minutes(10);

}  // namespace

TEST_CASE("backoff ceiling doubles per attempt and saturates at the cap") {
  CHECK(backoff_ceiling(0, kBase, kCap) == Millis(1000));
  CHECK(backoff_ceiling(1, kBase, kCap) == Millis(2000));
  CHECK(backoff_ceiling(5, kBase, kCap) == Millis(32'000));
  CHECK(backoff_ceiling(9, kBase, kCap) == Millis(512'000));
  CHECK(backoff_ceiling(10, kBase, kCap) == kCap);
  CHECK(backoff_ceiling(63, kBase, kCap) == kCap);
  CHECK(backoff_ceiling(INT_MAX, kBase, kCap) == kCap);
  CHECK(backoff_ceiling(-3, kBase, kCap) == kBase);
  CHECK(backoff_ceiling(INT_MAX, Millis(1), Millis(LLONG_MAX)) == Millis(LLONG_MAX));
  CHECK(backoff_ceiling(3, Millis(0), kCap) == Millis(0));
  CHECK(backoff_ceiling(3, kBase, Millis(0)) == Millis(0));
  CHECK(backoff_ceiling(0, kCap * 2, kCap) == kCap);
}

TEST_CASE("backoff with the largest draw grows with the attempt and never exceeds the cap") {
  FixedRandom almost_one(0.999999);
  Millis previous(0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    Millis delay = backoff_delay(attempt, kBase, kCap, almost_one);
    CHECK(delay > previous);
    CHECK(delay < backoff_ceiling(attempt, kBase, kCap));
    CHECK(delay >= backoff_ceiling(attempt, kBase, kCap) - Millis(1));
    previous = delay;
  }
  for (int attempt : {10, 11, 40, 1000, INT_MAX}) {
    Millis delay = backoff_delay(attempt, kBase, kCap, almost_one);
    CHECK(delay < kCap);
    CHECK(delay >= kCap - Millis(1));
  }
}

TEST_CASE("backoff with the smallest draw is zero (full jitter, not equal jitter)") {
  FixedRandom zero(0.0);
  CHECK(backoff_delay(0, kBase, kCap, zero) == Millis(0));
  CHECK(backoff_delay(12, kBase, kCap, zero) == Millis(0));
}

TEST_CASE("backoff clamps a misbehaving random source") {
  FixedRandom one(1.0);
  CHECK(backoff_delay(0, kBase, kCap, one) == Millis(999));
  FixedRandom above(7.0);
  CHECK(backoff_delay(20, kBase, kCap, above) == kCap - Millis(1));
  FixedRandom negative(-0.5);
  CHECK(backoff_delay(3, kBase, kCap, negative) == Millis(0));
  FixedRandom not_a_number(std::numeric_limits<double>::quiet_NaN());
  CHECK(backoff_delay(3, kBase, kCap, not_a_number) == Millis(0));
}

TEST_CASE("backoff with a seeded source spreads over the whole window") {
  SeededRandom random(42);
  const Millis ceiling = backoff_ceiling(4, kBase, kCap);  // 16 s
  Millis smallest = ceiling;
  Millis largest(0);
  long long sum = 0;
  constexpr int kDraws = 2000;
  for (int i = 0; i < kDraws; ++i) {
    Millis delay = backoff_delay(4, kBase, kCap, random);
    REQUIRE(delay >= Millis(0));
    REQUIRE(delay < ceiling);
    smallest = std::min(smallest, delay);
    largest = std::max(largest, delay);
    sum += delay.count();
  }
  CHECK(smallest < ceiling / 10);
  CHECK(largest > ceiling * 9 / 10);
  const double mean = static_cast<double>(sum) / kDraws;
  CHECK(mean == doctest::Approx(ceiling.count() / 2.0).epsilon(0.05));
}

TEST_CASE("backoff is reproducible with the same seed") {
  SeededRandom a(7);
  SeededRandom b(7);
  for (int attempt = 0; attempt < 20; ++attempt) {
    CHECK(backoff_delay(attempt, kBase, kCap, a) == backoff_delay(attempt, kBase, kCap, b));
  }
}

}  // namespace lfh
