#include "sync/maintenance.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/time_format.h"

namespace lfh {
namespace {
constexpr int kSweepBatch = 100;  // the current API takes up to 100 ids per request
}

Maintenance::Maintenance(LangfuseApi& api, CheckpointStore& store, ServerGate& gate, Clock& clock,
                         Random& random, const SyncSettings& settings)
    : store_(store),
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
  ScorePassResult pass;  // counts requests and carries the outcome of fetch_page
  for (int64_t batch = 0; max_batches < 0 || batch < max_batches; ++batch) {
    auto ids = store_.live_score_ids(project, after, kSweepBatch);
    if (!ids.ok()) {
      report.error = ids.status();
      return;
    }
    if (ids->empty()) {
      if (Status s = store_.finish_pass(project, kStreamSweep, pass.requests); !s.ok()) {
        report.error = s;
        return;
      }
      report.sweep_complete = true;
      log::info("deletion sweep done: {} deletions seen", report.deletions_seen);
      break;
    }
    ScoreQuery q;
    q.ids = *ids;
    q.limit = kSweepBatch;
    std::set<std::string> present;
    bool ok = true;
    // The server may page even an id query; follow its cursor.
    for (;;) {
      auto page = poller_.fetch_page(q, stop, pass);
      if (!page.ok()) {
        ok = false;
        break;
      }
      for (const auto& s : page->scores) present.insert(s.id);
      // Unreadable items still prove their id exists.
      for (const auto& e : page->errors) present.insert(e.record_id);
      if (!page->next_cursor || page->next_cursor == q.cursor) break;
      q.cursor = page->next_cursor;
    }
    report.sweep_requests = pass.requests;
    if (!ok) {
      if (pass.outcome == ScorePassResult::Outcome::kCancelled)
        report.cancelled = true;
      else if (pass.outcome == ScorePassResult::Outcome::kFatal)
        report.error = pass.error;
      else
        report.waiting = true;
      return;
    }
    std::vector<std::string> missing;
    for (const auto& id : *ids) {
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
    after = ids->back();
    if (static_cast<int>(ids->size()) < kSweepBatch) {
      // A short batch was the last one: the sweep is complete.
      if (Status s = store_.finish_pass(project, kStreamSweep, pass.requests); !s.ok()) {
        report.error = s;
        return;
      }
      report.sweep_complete = true;
      log::info("deletion sweep done: {} deletions seen", report.deletions_seen);
      break;
    }
    if (Status s = store_.set_pass_cursor(project, kStreamSweep, after); !s.ok()) {
      report.error = s;
      return;
    }
  }
}

}  // namespace lfh
