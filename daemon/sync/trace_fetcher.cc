#include "sync/trace_fetcher.h"

#include <fmt/format.h>

#include <set>

#include "core/log.h"
#include "sync/retry_policy.h"

namespace lfh {
namespace {

using Outcome = TraceFetchResult::Outcome;

}  // namespace

TraceFetchResult TraceFetcher::fetch(const std::string& project, TraceTask task,
                                     std::stop_token stop) {
  TraceFetchResult result;
  int page_size = task.page_size > 0 ? task.page_size : settings_.observation_page_size;
  if (task.big) page_size = 1;
  CursorLoopGuard loop_guard(task.cursor);
  for (;;) {
    if (stop.stop_requested()) {
      result.outcome = Outcome::kCancelled;
      return result;
    }
    if (!gate_.may_send()) {
      result.outcome = Outcome::kDeferred;
      return result;
    }
    ObservationQuery q;
    q.trace_id = task.trace_id;
    q.cursor = task.cursor;
    q.limit = page_size;
    q.size_reduced = page_size < settings_.observation_page_size;
    q.anchor_time = task.anchor_time;  // lets the API narrow a query the server times out on
    ++result.requests;
    const auto sent = clock_.mono();
    auto page = api_.observations(q, stop);
    const auto took = std::chrono::duration_cast<Millis>(clock_.mono() - sent);
    gate_.report(page.status());
    if (!page.ok()) {
      if (Status s = learn_size(project, task, bytes_of_failure(page.status()), result); !s.ok()) {
        result.outcome = Outcome::kFatal;
        result.error = s;
        return result;
      }
      const bool shrink = retry_action(page.status().kind(), page_size > 1) == RetryAction::kShrink;
      if (shrink && result.learned_big) {
        // Over the cap, and so big: the next attempt is alone, one observation per page.
        result.outcome = Outcome::kBig;
        return result;
      }
      if (shrink) {
        // Too big for one response: halve the page and ask again, down to one observation.
        page_size = std::max(1, page_size / 2);
        log::info("trace {}: page over the size cap; retrying with {} per page", task.trace_id,
                  page_size);
        continue;
      }
      return handle_error(project, task, page_size, page.status(), result);
    }
    ++result.pages;
    if (static_cast<int64_t>(page->body_bytes) < kSmallPageBytes) {
      result.small_page_latency = std::max(result.small_page_latency.value_or(Millis(0)), took);
    }
    const bool was_big = task.big;
    if (Status s = learn_size(project, task, static_cast<int64_t>(page->body_bytes), result);
        !s.ok()) {
      result.outcome = Outcome::kFatal;
      result.error = s;
      return result;
    }
    result.observations += static_cast<int64_t>(page->observations.size());
    result.record_errors += static_cast<int64_t>(page->errors.size());
    for (const auto& e : page->errors) {
      log::warn("trace {}: observation {} skipped: {}", task.trace_id, e.record_id, e.reason);
      (void)store_.record_event(project, "warn", "observation", task.trace_id,
                                e.record_id + ": " + e.reason);
    }
    const auto& next = page->next_cursor;
    if (!loop_guard.advance(next, page->observations.empty() && page->errors.empty())) {
      return handle_error(project, task, page_size,
                          Status::Error(ErrorKind::kCorrupt,
                                        "observation paging loops (cursor repeated or empty "
                                        "pages with a next cursor)"),
                          result);
    }
    if (Status s = store_.apply_observation_page(project, task, page->observations, next, page_size,
                                                 settings_.settle_time);
        !s.ok()) {
      result.outcome = Outcome::kFatal;
      result.error = s;
      return result;
    }
    if (!next) {
      result.outcome = Outcome::kDone;
      return result;
    }
    task.cursor = next;
    task.attempts = 0;
    if (task.big && !was_big) {
      // Found big while others may be in flight: hand it back to be fetched alone.
      result.outcome = Outcome::kBig;
      return result;
    }
  }
}

int64_t TraceFetcher::bytes_of_failure(const Status& error) {
  // Transport errors and size aborts carry the bytes received or announced; an HTTP error
  // status carries the status code, which is not a size.
  if (error.kind() == ErrorKind::kTooLarge) return error.detail();
  if (error.kind() == ErrorKind::kRetryable && error.detail() >= 1000) return error.detail();
  return 0;
}

Status TraceFetcher::learn_size(const std::string& project, TraceTask& task, int64_t bytes,
                                TraceFetchResult& result) {
  result.largest_response = std::max(result.largest_response, bytes);
  if (bytes <= settings_.big_response_bytes || task.big) return Status::Ok();
  log::info(
      "trace {}: a {} byte response; held as big from now on (fetched alone, one "
      "observation per page)",
      task.trace_id, bytes);
  task.big = true;
  result.learned_big = true;
  return store_.mark_trace_big(project, task.trace_id, bytes);
}

TraceFetchResult TraceFetcher::handle_error(const std::string& project, const TraceTask& task,
                                            int page_size, const Status& error,
                                            TraceFetchResult result) {
  result.error = error;
  auto fail = [&](const std::string& reason, const std::string& message) {
    result.outcome = Outcome::kFailed;
    log::warn("trace {} failed ({}): {}", task.trace_id, reason, message);
    Status s = store_.mark_trace_failed(project, task.trace_id, reason, message);
    if (!s.ok()) {
      result.outcome = Outcome::kFatal;
      result.error = s;
    }
    return result;
  };
  // Shrinking was tried in the page loop: here a page of one observation is over the cap.
  switch (retry_action(error.kind(), /*can_shrink=*/false)) {
    case RetryAction::kCancelled:
      result.outcome = Outcome::kCancelled;
      return result;
    case RetryAction::kFatal:
      result.outcome = Outcome::kFatal;
      return result;
    case RetryAction::kShrink:
    case RetryAction::kFail:
      if (error.kind() == ErrorKind::kTooLarge) {
        return fail("too_large",
                    fmt::format("a single observation is larger than the response cap ({} "
                                "bytes received before aborting)",
                                error.detail()));
      }
      return fail("permanent", error.message());
    case RetryAction::kRetry:
      if (error.kind() == ErrorKind::kRetryable && !gate_.may_send()) {
        // The breaker opened on this failure: the outage is not this trace's fault.
        result.outcome = Outcome::kDeferred;
        return result;
      }
      break;
  }
  const RetryPolicy policy(settings_.backoff_base, settings_.backoff_cap, settings_.max_attempts);
  const int attempts = task.attempts + 1;
  if (policy.exhausted(attempts)) {
    return fail("max_attempts",
                fmt::format("{} attempts; last error: {}", attempts, error.message()));
  }
  const Millis delay = policy.delay(attempts, error, random_);
  result.outcome = Outcome::kRetry;
  log::info("trace {}: {} (attempt {}); retry in {} ms", task.trace_id, error.message(), attempts,
            delay.count());
  Status s = store_.mark_trace_retry(project, task.trace_id, attempts, clock_.now() + delay,
                                     error.to_string(), page_size);
  if (!s.ok()) {
    result.outcome = Outcome::kFatal;
    result.error = s;
  }
  return result;
}

}  // namespace lfh
