#include "sync/retry_policy.h"

#include <algorithm>

#include "http/backoff.h"

namespace lfh {

RetryAction retry_action(ErrorKind kind, bool can_shrink) {
  switch (kind) {
    case ErrorKind::kOk:
    case ErrorKind::kRetryable:
    case ErrorKind::kRateLimited:
    // A body that is not the JSON it should be is most often a proxy's error page or a cut-off
    // answer: the same request usually succeeds later, and max_attempts bounds it.
    case ErrorKind::kCorrupt:
      return RetryAction::kRetry;
    case ErrorKind::kTooLarge:
      return can_shrink ? RetryAction::kShrink : RetryAction::kFail;
    case ErrorKind::kPermanent:
    case ErrorKind::kNotFound:
      return RetryAction::kFail;
    case ErrorKind::kAuth:
    case ErrorKind::kConfig:
    case ErrorKind::kIo:
    case ErrorKind::kFatal:
      return RetryAction::kFatal;
    case ErrorKind::kCancelled:
      return RetryAction::kCancelled;
  }
  return RetryAction::kFatal;
}

Millis RetryPolicy::delay(int attempts, const Status& error, Random& random) const {
  Millis wait = backoff_delay(std::max(attempts, 1) - 1, base_, cap_, random);
  if (error.retry_after_ms()) wait = std::max(wait, Millis(*error.retry_after_ms()));
  return wait;
}

CursorLoopGuard::CursorLoopGuard(const std::optional<std::string>& start, int max_empty_pages)
    : max_empty_pages_(max_empty_pages) {
  if (start) seen_.insert(*start);
}

bool CursorLoopGuard::advance(const std::optional<std::string>& next, bool page_empty) {
  empty_pages_ = page_empty ? empty_pages_ + 1 : 0;
  if (!next) return true;  // the last page: nothing can loop any more
  return seen_.insert(*next).second && empty_pages_ <= max_empty_pages_;
}

}  // namespace lfh
