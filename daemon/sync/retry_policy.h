// One retry policy for every caller that talks to the server (trace fetches, score polls,
// maintenance, connecting): what an error kind means, how long to wait before the next try,
// when to give up, and when a cursor-paged stream is looping.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "core/clock.h"
#include "core/random.h"
#include "core/status.h"

namespace lfh {

enum class RetryAction {
  kRetry,      // transient (5xx, 524, resets, timeouts, malformed bodies, 429): wait and retry
  kShrink,     // the response was over the size cap: ask again for a smaller page
  kFail,       // this item cannot succeed (400, 404, too large at one item): give up on it
  kFatal,      // the process cannot go on (bad keys, configuration, local I/O)
  kCancelled,  // stop requested
};

/// The action for an error kind. `can_shrink`: the caller can ask for a smaller page (a page
/// of more than one observation); without it an over-size response is kFail.
[[nodiscard]] RetryAction retry_action(ErrorKind kind, bool can_shrink = false);

/// Capped full-jitter backoff with a bounded number of attempts.
class RetryPolicy {
 public:
  RetryPolicy(Millis base, Millis cap, int max_attempts)
      : base_(base), cap_(cap), max_attempts_(max_attempts) {}

  /// `attempts`: failures so far, this one included (>= 1). True when no retry is left.
  [[nodiscard]] bool exhausted(int attempts) const { return attempts >= max_attempts_; }

  /// The wait before the next try after `attempts` failures: backoff_delay(attempts - 1), and
  /// never less than the Retry-After the error carries.
  [[nodiscard]] Millis delay(int attempts, const Status& error, Random& random) const;

  int max_attempts() const { return max_attempts_; }

 private:
  Millis base_;
  Millis cap_;
  int max_attempts_;
};

/// Detects a cursor-paged stream that loops: a next cursor seen before in this walk, or more
/// than `max_empty_pages` empty pages in a row that still carry a next cursor.
class CursorLoopGuard {
 public:
  explicit CursorLoopGuard(const std::optional<std::string>& start, int max_empty_pages = 3);

  /// After each page. False when the walk loops (the caller stops and reports kCorrupt).
  [[nodiscard]] bool advance(const std::optional<std::string>& next, bool page_empty);

 private:
  std::set<std::string> seen_;
  int max_empty_pages_;
  int empty_pages_ = 0;
};

}  // namespace lfh
