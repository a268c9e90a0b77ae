#include "sync/trace_fetcher.h"

#include <fmt/format.h>

#include <set>

#include "core/log.h"
#include "http/backoff.h"

namespace lfh {
namespace {

using Outcome = TraceFetchResult::Outcome;
constexpr int kMaxEmptyPages = 3;

}  // namespace

TraceFetchResult TraceFetcher::fetch(const std::string& project, TraceTask task,
                                     std::stop_token stop) {
  TraceFetchResult result;
  int page_size = task.page_size > 0 ? task.page_size : settings_.observation_page_size;
  std::set<std::string> seen_cursors;
  if (task.cursor) seen_cursors.insert(*task.cursor);
  int empty_pages = 0;
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
    auto page = api_.observations(q, stop);
    gate_.report(page.status());
    if (!page.ok()) {
      if (page.status().kind() == ErrorKind::kTooLarge && page_size > 1) {
        // Too big for one response: halve the page and ask again, down to one observation.
        page_size = std::max(1, page_size / 2);
        log::info("trace {}: page over the size cap; retrying with {} per page", task.trace_id,
                  page_size);
        continue;
      }
      return handle_error(project, task, page_size, page.status(), result);
    }
    ++result.pages;
    result.observations += static_cast<int64_t>(page->observations.size());
    result.record_errors += static_cast<int64_t>(page->errors.size());
    for (const auto& e : page->errors) {
      log::warn("trace {}: observation {} skipped: {}", task.trace_id, e.record_id, e.reason);
      (void)store_.record_event(project, "warn", "observation", task.trace_id,
                                e.record_id + ": " + e.reason);
    }
    const auto& next = page->next_cursor;
    empty_pages = page->observations.empty() && page->errors.empty() ? empty_pages + 1 : 0;
    if (next && (!seen_cursors.insert(*next).second || empty_pages > kMaxEmptyPages)) {
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
  }
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
  switch (error.kind()) {
    case ErrorKind::kCancelled:
      result.outcome = Outcome::kCancelled;
      return result;
    case ErrorKind::kAuth:
    case ErrorKind::kConfig:
    case ErrorKind::kIo:
    case ErrorKind::kFatal:
      result.outcome = Outcome::kFatal;
      return result;
    case ErrorKind::kTooLarge:
      return fail("too_large",
                  fmt::format("a single observation is larger than the response cap ({} bytes "
                              "received before aborting)",
                              error.detail()));
    case ErrorKind::kPermanent:
    case ErrorKind::kNotFound:
      return fail("permanent", error.message());
    case ErrorKind::kRetryable:
      if (!gate_.may_send()) {
        // The breaker opened on this failure: the outage is not this trace's fault.
        result.outcome = Outcome::kDeferred;
        return result;
      }
      break;
    case ErrorKind::kRateLimited:
    case ErrorKind::kCorrupt:
    case ErrorKind::kOk:
      break;
  }
  const int attempts = task.attempts + 1;
  if (attempts >= settings_.max_attempts) {
    return fail("max_attempts",
                fmt::format("{} attempts; last error: {}", attempts, error.message()));
  }
  Millis delay =
      backoff_delay(attempts - 1, settings_.backoff_base, settings_.backoff_cap, random_);
  if (error.retry_after_ms()) delay = std::max(delay, Millis(*error.retry_after_ms()));
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
