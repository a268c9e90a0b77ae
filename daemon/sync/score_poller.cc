#include "sync/score_poller.h"

#include <fmt/format.h>

#include <set>

#include "core/log.h"
#include "core/time_format.h"
#include "sync/retry_policy.h"

namespace lfh {
namespace {

using Outcome = ScorePassResult::Outcome;
constexpr int kMaxEmptyPages = 3;
constexpr const char* kBeginningOfTime = "1970-01-01T00:00:00.000Z";

void add_counts(ScorePageCounts& total, const ScorePageCounts& page) {
  total.inserted += page.inserted;
  total.changed += page.changed;
  total.restored += page.restored;
  total.unchanged += page.unchanged;
  total.traces_queued += page.traces_queued;
}

}  // namespace

Result<ScorePage> ScorePoller::fetch_page(const ScoreQuery& query, std::stop_token stop,
                                          ScorePassResult& result) {
  int attempt = 0;
  for (;;) {
    switch (gate_.wait_until_closed(settings_.max_wait, stop)) {
      case ServerGate::Wait::kClosed:
        break;
      case ServerGate::Wait::kStopped:
        result.outcome = Outcome::kCancelled;
        return Status::Error(ErrorKind::kCancelled, "stopped");
      case ServerGate::Wait::kTooLong:
        result.outcome = Outcome::kWaiting;
        result.error =
            Status::Error(ErrorKind::kRetryable, "server unavailable (circuit breaker open)");
        return result.error;
    }
    ++result.requests;
    auto page = api_.scores(query, stop);
    gate_.report(page.status());
    if (page.ok()) return page;
    const Status& err = page.status();
    switch (retry_action(err.kind())) {
      case RetryAction::kCancelled:
        result.outcome = Outcome::kCancelled;
        return err;
      case RetryAction::kRetry:
        break;
      case RetryAction::kShrink:  // score pages do not shrink: retrying the same cannot help
      case RetryAction::kFail:
      case RetryAction::kFatal:
        result.outcome = Outcome::kFatal;
        result.error = err;
        return err;
    }
    const RetryPolicy policy(settings_.backoff_base, settings_.backoff_cap, settings_.max_attempts);
    ++attempt;
    if (policy.exhausted(attempt)) {
      result.outcome = Outcome::kFatal;
      result.error = Status::Error(
          ErrorKind::kFatal,
          fmt::format("giving up on scores after {} attempts: {}", attempt, err.message()));
      return result.error;
    }
    const Millis delay = policy.delay(attempt, err, random_);
    if (delay > settings_.max_wait) {
      result.outcome = Outcome::kWaiting;
      result.error = err;
      return err;
    }
    log::warn("scores request failed ({}); retry {} in {} ms", err.message(), attempt,
              delay.count());
    if (!clock_.sleep_for(delay, stop)) {
      result.outcome = Outcome::kCancelled;
      return Status::Error(ErrorKind::kCancelled, "stopped");
    }
  }
}

ScorePassResult ScorePoller::poll_new(const std::string& project, std::stop_token stop) {
  auto state = store_.pass_state(project, kStreamPoll);
  if (!state.ok()) {
    ScorePassResult r;
    r.outcome = Outcome::kFatal;
    r.error = state.status();
    return r;
  }
  if (state->in_progress()) return run_stream(project, kStreamPoll, state->pass_from, true, stop);
  std::optional<std::string> from = settings_.since;
  if (state->watermark) {
    if (auto w = parse_iso8601(*state->watermark)) from = format_iso8601(*w - settings_.overlap);
  }
  return run_stream(project, kStreamPoll, from, false, stop);
}

ScorePassResult ScorePoller::rescan(const std::string& project, const std::string& from,
                                    std::stop_token stop) {
  auto state = store_.pass_state(project, kStreamRescan);
  if (state.ok() && state->in_progress()) {
    return run_stream(project, kStreamRescan, state->pass_from, true, stop);
  }
  return run_stream(project, kStreamRescan, from, false, stop);
}

ScorePassResult ScorePoller::run_stream(const std::string& project, const std::string& stream,
                                        const std::optional<std::string>& from, bool resume,
                                        std::stop_token stop) {
  ScorePassResult result;
  std::optional<std::string> cursor;
  if (resume) {
    auto state = store_.pass_state(project, stream);
    if (state.ok()) cursor = state->pass_cursor;
    log::info("resuming {} pass from {}{}", stream, from.value_or("the beginning"),
              cursor ? " at its saved cursor" : "");
  } else {
    if (Status s = store_.begin_pass(project, stream, from); !s.ok()) {
      result.outcome = Outcome::kFatal;
      result.error = s;
      return result;
    }
  }
  bool cursor_reset_done = false;
  std::set<std::string> seen_cursors;
  if (cursor) seen_cursors.insert(*cursor);
  int empty_pages = 0;
  for (;;) {
    ScoreQuery q;
    // Always bounded below: some server versions require fromTimestamp on the v3 endpoint.
    q.from_timestamp = from.value_or(kBeginningOfTime);
    q.sources = settings_.sources;
    q.names = settings_.score_names;
    q.environments = settings_.environments;
    q.cursor = cursor;
    q.limit = settings_.score_page_size;
    auto page = fetch_page(q, stop, result);
    if (!page.ok()) {
      // A saved cursor the server no longer accepts: start the pass over once.
      if (page.status().kind() == ErrorKind::kPermanent && cursor && !cursor_reset_done) {
        log::warn("{} pass: the server rejected the saved cursor; restarting the pass", stream);
        cursor_reset_done = true;
        cursor.reset();
        if (Status s = store_.reset_pass(project, stream); !s.ok()) {
          result.outcome = Outcome::kFatal;
          result.error = s;
          return result;
        }
        result.outcome = Outcome::kComplete;
        continue;
      }
      result.error = page.status();
      return result;
    }
    ++result.pages;
    result.scores_seen += static_cast<int64_t>(page->scores.size());
    result.record_errors += static_cast<int64_t>(page->errors.size());
    for (const auto& e : page->errors) {
      log::warn("score {} skipped: {}", e.record_id, e.reason);
      (void)store_.record_event(project, "warn", "score", e.record_id, e.reason);
    }
    std::optional<std::string> next = page->next_cursor;
    empty_pages = page->scores.empty() && page->errors.empty() ? empty_pages + 1 : 0;
    // A cursor seen before in this pass, or many empty pages that claim more: the server's
    // paging loops. Stop the pass (the next one starts over) instead of spinning forever.
    if (next && (!seen_cursors.insert(*next).second || empty_pages > kMaxEmptyPages)) {
      result.outcome = Outcome::kWaiting;
      result.error = Status::Error(ErrorKind::kCorrupt,
                                   fmt::format("{} pass: score paging loops (cursor repeated or "
                                               "empty pages with a next cursor)",
                                               stream));
      log::error("{}", result.error.message());
      (void)store_.record_event(project, "error", "score", stream, result.error.message());
      (void)store_.reset_pass(project, stream);
      return result;
    }
    // The watermark never runs ahead of the server's clock (its Date header; ours without one):
    // UI score timestamps come from annotators' browsers.
    const std::string server_now = page->server_time.value_or(format_iso8601(clock_.now()));
    auto counts = store_.apply_score_page(project, stream, page->scores, next,
                                          /*queue_traces=*/true, result.requests, server_now);
    if (!counts.ok()) {
      result.outcome = Outcome::kFatal;
      result.error = counts.status();
      return result;
    }
    add_counts(result.counts, *counts);
    if (!next) break;
    cursor = next;
  }
  result.outcome = Outcome::kComplete;
  return result;
}

}  // namespace lfh
