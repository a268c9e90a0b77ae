#include "sync/maintenance.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/time_format.h"
#include "langfuse/api_transport.h"
#include "langfuse/query_string.h"

namespace lfh {
namespace {

constexpr int kSweepBatch = 100;  // both APIs take up to 100 ids per request

// The longest prefix of `ids` whose encoded list fits one request (at least one id).
std::size_t fitting_prefix(const std::vector<std::string>& ids) {
  std::size_t bytes = 0;
  for (std::size_t n = 0; n < ids.size(); ++n) {
    bytes += percent_encode(ids[n]).size() + (n > 0 ? 1 : 0);
    if (bytes > kMaxIdListBytes) return std::max<std::size_t>(n, 1);
  }
  return ids.size();
}

bool is_url_too_long(const Status& status) {
  return status.kind() == ErrorKind::kPermanent &&
         (status.detail() == 414 || status.detail() == 431);
}

// The server refused this request for good; another batch may still pass.
bool refused_for_good(const Status& status) {
  return status.kind() == ErrorKind::kPermanent || status.kind() == ErrorKind::kNotFound;
}

}  // namespace

Maintenance::Maintenance(LangfuseApi& api, CheckpointStore& store, ServerGate& gate, Clock& clock,
                         Random& random, const SyncSettings& settings)
    : api_(api),
      store_(store),
      clock_(clock),
      settings_(settings),
      poller_(api, store, gate, clock, random, settings) {}

int64_t Maintenance::sweep_batches_per_pass(int64_t live_scores, Millis sweep_interval,
                                            Millis poll_interval) {
  const int64_t batches = (live_scores + kSweepBatch - 1) / kSweepBatch;
  const int64_t passes =
      std::max<int64_t>(1, (sweep_interval / 2) / std::max<Millis>(poll_interval, Millis(1)));
  return std::max<int64_t>(1, (batches + passes - 1) / passes);
}

bool Maintenance::due(const std::optional<std::string>& last_completed, Millis interval) const {
  if (!last_completed) return false;
  auto t = parse_iso8601(*last_completed);
  return !t || *t + interval <= clock_.now();
}

MaintenanceReport Maintenance::run_due(const std::string& project, std::stop_token stop) {
  MaintenanceReport report;
  for (const char* stream : {kStreamRescan, kStreamSweep}) {
    auto st = store_.pass_state(project, stream);
    if (!st.ok()) {
      report.error = st.status();
      return report;
    }
    // A stream that never completed starts its schedule now (the first complete harvest
    // counts as a re-scan and a sweep).
    if (!st->last_completed_at && !st->in_progress()) {
      if (Status s = store_.mark_stream_completed(project, stream); !s.ok()) {
        report.error = s;
        return report;
      }
    }
  }
  auto rescan_state = store_.pass_state(project, kStreamRescan);
  if (rescan_state.ok() && (rescan_state->in_progress() ||
                            due(rescan_state->last_completed_at, settings_.rescan_interval))) {
    rescan(project, format_iso8601(clock_.now() - settings_.rescan_window), report, stop);
    if (report.waiting || report.cancelled || !report.error.ok()) return report;
  }
  auto sweep_state = store_.pass_state(project, kStreamSweep);
  if (sweep_state.ok() && (sweep_state->in_progress() ||
                           due(sweep_state->last_completed_at, settings_.sweep_interval))) {
    auto live = store_.live_score_count(project);
    int64_t n = live.ok() ? *live : 0;
    sweep(project, sweep_batches_per_pass(n, settings_.sweep_interval, settings_.poll_interval),
          report, stop);
  }
  return report;
}

MaintenanceReport Maintenance::run_all(const std::string& project,
                                       const std::optional<std::string>& since,
                                       std::stop_token stop) {
  MaintenanceReport report;
  std::string from = since.value_or(format_iso8601(clock_.now() - settings_.rescan_window));
  // A fresh pass from `from`: an interrupted earlier reconcile must not impose its own start.
  if (Status s = store_.begin_pass(project, kStreamRescan, from); !s.ok()) {
    report.error = s;
    return report;
  }
  rescan(project, from, report, stop);
  if (report.waiting || report.cancelled || !report.error.ok()) return report;
  sweep(project, -1, report, stop);
  return report;
}

void Maintenance::rescan(const std::string& project, const std::string& from,
                         MaintenanceReport& report, std::stop_token stop) {
  report.rescan_ran = true;
  log::info("re-scan: re-reading scores since {}", from);
  ScorePassResult r = poller_.rescan(project, from, stop);
  report.rescan_requests += r.requests;
  report.edits_seen += r.counts.changed;
  report.restored += r.counts.restored;
  report.new_scores += r.counts.inserted;
  switch (r.outcome) {
    case ScorePassResult::Outcome::kComplete:
      report.rescan_complete = true;
      log::info("re-scan done: {} scores, {} edits, {} new, {} requests", r.scores_seen,
                r.counts.changed, r.counts.inserted, r.requests);
      break;
    case ScorePassResult::Outcome::kWaiting:
      report.waiting = true;
      break;
    case ScorePassResult::Outcome::kCancelled:
      report.cancelled = true;
      break;
    case ScorePassResult::Outcome::kFatal:
      report.error = r.error;
      break;
  }
}

Result<std::size_t> Maintenance::check_batch(const std::vector<std::string>& ids,
                                             std::set<std::string>& present, ScorePassResult& pass,
                                             std::stop_token stop) {
  std::size_t count = fitting_prefix(ids);
  for (;;) {
    ScoreQuery q;
    q.ids.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count));
    q.limit = kSweepBatch;
    std::set<std::string> found;
    Status failure;
    // The server may page even an id query; follow its cursor.
    for (;;) {
      auto page = poller_.fetch_page(q, stop, pass);
      if (!page.ok()) {
        failure = page.status();
        break;
      }
      for (const auto& s : page->scores) found.insert(s.id);
      // Unreadable items still prove their id exists.
      for (const auto& e : page->errors) found.insert(e.record_id);
      if (!page->next_cursor || page->next_cursor == q.cursor) break;
      q.cursor = page->next_cursor;
    }
    if (failure.ok()) {
      present.merge(found);
      return count;
    }
    if (is_url_too_long(failure) && count > 1) {
      count /= 2;
      log::info("deletion sweep: the server refused {} bytes of ids (HTTP {}); trying {} ids",
                encoded_list_bytes(q.ids), failure.detail(), count);
      pass.outcome = ScorePassResult::Outcome::kComplete;
      pass.error = Status::Ok();
      continue;
    }
    return failure;
  }
}

void Maintenance::sweep(const std::string& project, int64_t max_batches, MaintenanceReport& report,
                        std::stop_token stop) {
  auto st = store_.pass_state(project, kStreamSweep);
  if (!st.ok()) {
    report.error = st.status();
    return;
  }
  std::string after;
  if (st->in_progress()) {
    after = st->pass_cursor.value_or("");
  } else if (Status s = store_.begin_pass(project, kStreamSweep, std::nullopt); !s.ok()) {
    report.error = s;
    return;
  }
  report.sweep_ran = true;
  // The legacy API never lists session, experiment or CORRECTION scores: their absence there
  // proves nothing.
  const bool legacy = api_.generation() == ApiGeneration::kLegacy;
  ScorePassResult pass;  // counts requests and carries the outcome of fetch_page
  auto finish = [&] {
    if (Status s = store_.finish_pass(project, kStreamSweep, pass.requests); !s.ok()) {
      report.error = s;
      return;
    }
    report.sweep_complete = true;
    log::info("deletion sweep done: {} deletions seen", report.deletions_seen);
  };
  for (int64_t batch = 0; max_batches < 0 || batch < max_batches; ++batch) {
    auto ids = store_.live_score_ids(project, after, kSweepBatch, legacy);
    if (!ids.ok()) {
      report.error = ids.status();
      return;
    }
    if (ids->empty()) return finish();
    std::set<std::string> present;
    auto checked = check_batch(*ids, present, pass, stop);
    report.sweep_requests = pass.requests;
    std::size_t count = checked.ok() ? *checked : fitting_prefix(*ids);
    std::vector<std::string> batch_ids(ids->begin(),
                                       ids->begin() + static_cast<std::ptrdiff_t>(count));
    Status skipped;
    if (!checked.ok()) {
      const Status& err = checked.status();
      if (!refused_for_good(err)) {
        if (pass.outcome == ScorePassResult::Outcome::kCancelled) {
          report.cancelled = true;
        } else if (pass.outcome == ScorePassResult::Outcome::kWaiting) {
          report.waiting = true;
        } else {
          report.error = err;
        }
        return;
      }
      // Refused for good: skip this batch (nothing in it is marked deleted) so the sweep does
      // not stall on it, and say so.
      skipped = Status::Error(
          ErrorKind::kPermanent,
          fmt::format("deletion sweep: skipped {} score ids from {} the server refused: {}", count,
                      batch_ids.front(), err.message()));
      skipped.with_detail(err.detail());
      report.sweep_skipped_ids += static_cast<int64_t>(count);
      log::error("{}", skipped.message());
      (void)store_.record_event(project, "error", "sweep", batch_ids.front(), skipped.message());
    } else {
      std::vector<std::string> missing;
      for (const auto& id : batch_ids) {
        if (!present.count(id)) missing.push_back(id);
      }
      if (!missing.empty()) {
        auto marked = store_.mark_scores_deleted(project, missing);
        if (!marked.ok()) {
          report.error = marked.status();
          return;
        }
        report.deletions_seen += *marked;
        log::info("deletion sweep: {} scores no longer on the server", *marked);
      }
    }
    after = batch_ids.back();
    // A short read was the last one: the sweep is complete once all of it is checked.
    if (static_cast<int>(ids->size()) < kSweepBatch && count == ids->size()) {
      finish();
      if (!skipped.ok() && report.error.ok()) report.error = skipped;
      return;
    }
    if (Status s = store_.set_pass_cursor(project, kStreamSweep, after); !s.ok()) {
      report.error = s;
      return;
    }
    if (!skipped.ok()) {
      report.error = skipped;  // progress is saved; the next slice goes on after this batch
      return;
    }
  }
}

}  // namespace lfh
