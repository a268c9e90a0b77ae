#include "sync/retry_policy.h"

#include <doctest/doctest.h>

namespace lfh {

TEST_CASE("every error kind has one meaning for every caller") {
  CHECK(retry_action(ErrorKind::kRetryable) == RetryAction::kRetry);
  CHECK(retry_action(ErrorKind::kRateLimited) == RetryAction::kRetry);
  // A malformed body is transient for every caller, bounded by max_attempts.
  CHECK(retry_action(ErrorKind::kCorrupt) == RetryAction::kRetry);
  CHECK(retry_action(ErrorKind::kTooLarge, /*can_shrink=*/true) == RetryAction::kShrink);
  CHECK(retry_action(ErrorKind::kTooLarge, /*can_shrink=*/false) == RetryAction::kFail);
  CHECK(retry_action(ErrorKind::kPermanent) == RetryAction::kFail);
  CHECK(retry_action(ErrorKind::kNotFound) == RetryAction::kFail);
  CHECK(retry_action(ErrorKind::kAuth) == RetryAction::kFatal);
  CHECK(retry_action(ErrorKind::kConfig) == RetryAction::kFatal);
  CHECK(retry_action(ErrorKind::kIo) == RetryAction::kFatal);
  CHECK(retry_action(ErrorKind::kFatal) == RetryAction::kFatal);
  CHECK(retry_action(ErrorKind::kCancelled) == RetryAction::kCancelled);
  // Shrinking is only ever an answer to a response over the cap.
  CHECK(retry_action(ErrorKind::kRetryable, true) == RetryAction::kRetry);
  CHECK(retry_action(ErrorKind::kPermanent, true) == RetryAction::kFail);
}

TEST_CASE("the backoff grows within its cap, never below Retry-After, and gives up in time") {
  const RetryPolicy policy(Millis(1000), Millis(8000), 4);
  SeededRandom random(11);
  const Status plain = Status::Error(ErrorKind::kRetryable, "HTTP 503");
  for (int attempts = 1; attempts <= 6; ++attempts) {
    const Millis ceiling = std::min(Millis(8000), Millis(1000LL << (attempts - 1)));
    for (int i = 0; i < 50; ++i) {
      const Millis d = policy.delay(attempts, plain, random);
      CHECK(d >= Millis(0));
      CHECK(d < ceiling);
    }
  }
  Status asked = Status::Error(ErrorKind::kRateLimited, "HTTP 429");
  asked.with_retry_after_ms(30'000);
  CHECK(policy.delay(1, asked, random) == Millis(30'000));  // above the cap: the server wins
  CHECK_FALSE(policy.exhausted(3));
  CHECK(policy.exhausted(4));
  CHECK(policy.exhausted(5));
  CHECK(policy.max_attempts() == 4);
}

TEST_CASE("the cursor-loop guard stops repeated cursors and endless empty pages") {
  SUBCASE("a cursor seen before, the starting one included") {
    CursorLoopGuard guard(std::string("c0"));
    CHECK(guard.advance(std::string("c1"), false));
    CHECK(guard.advance(std::string("c2"), false));
    CHECK_FALSE(guard.advance(std::string("c1"), false));
    CursorLoopGuard from_start(std::string("c0"));
    CHECK_FALSE(from_start.advance(std::string("c0"), false));
  }
  SUBCASE("more than three empty pages in a row that claim more") {
    CursorLoopGuard guard(std::nullopt);
    CHECK(guard.advance(std::string("a"), true));
    CHECK(guard.advance(std::string("b"), true));
    CHECK(guard.advance(std::string("c"), true));
    CHECK_FALSE(guard.advance(std::string("d"), true));
  }
  SUBCASE("a page with data resets the count; the last page never loops") {
    CursorLoopGuard guard(std::nullopt);
    CHECK(guard.advance(std::string("a"), true));
    CHECK(guard.advance(std::string("b"), true));
    CHECK(guard.advance(std::string("c"), true));
    CHECK(guard.advance(std::string("d"), false));
    CHECK(guard.advance(std::string("e"), true));
    CHECK(guard.advance(std::nullopt, true));
  }
}

}  // namespace lfh
