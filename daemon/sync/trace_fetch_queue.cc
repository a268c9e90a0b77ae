#include "sync/trace_fetch_queue.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.h"
#include "core/time_format.h"

namespace lfh {
namespace {

using Outcome = TraceFetchResult::Outcome;

// Healthy fetches in a row, per unit of the current limit, before it grows by one: the
// additive increase of AIMD, about one step per "window" of fetches.
constexpr int kHealthyPerStep = 4;
// A burst of failures that begins this soon after a big response was in flight is a crash
// of the server (a Node heap that the big response filled), not just an outage.
constexpr Millis kCrashWindow{5000};
// The rate comes back by this share of the configured rate per healthy step, and is never cut
// below the smallest share.
constexpr double kRateStep = 0.125;
constexpr double kMinRateScale = 1.0 / 16;
// The latency signal: slower than this many times the floor (and by at least kSlowMargin) is
// slow; within kFastFactor of it is fast again. The floor drifts up 1% per answer, so a server
// that settles at a new normal stops counting as slow.
constexpr double kSlowFactor = 3.0;
constexpr Millis kSlowMargin{250};
constexpr double kFastFactor = 1.5;
constexpr double kFloorDrift = 1.01;

}  // namespace

TraceFetchQueue::TraceFetchQueue(TraceFetcher& fetcher, CheckpointStore& store, ServerGate& gate,
                                 Clock& clock, const SyncSettings& settings, RequestBudget* budget)
    : fetcher_(fetcher),
      store_(store),
      gate_(gate),
      clock_(clock),
      settings_(settings),
      budget_(budget),
      cap_(std::max(1, settings.workers)) {
  {
    MutexLock lock(mu_);
    limit_ = cap_;
    safety_.effective_concurrency = cap_;
  }
  workers_.reserve(static_cast<size_t>(cap_));
  for (int i = 0; i < cap_; ++i) {
    workers_.emplace_back([this](std::stop_token stop) { worker_loop(stop); });
  }
}

TraceFetchQueue::~TraceFetchQueue() {
  {
    MutexLock lock(mu_);
    shutdown_ = true;
    if (round_stop_) round_stop_->request_stop();
  }
  changed_.notify_all();
  workers_.clear();  // joins
}

void TraceFetchQueue::restore(const ServerSafety& earlier) {
  MutexLock lock(mu_);
  safety_.largest_response = std::max(safety_.largest_response, earlier.largest_response);
  safety_.outages += earlier.outages;
  safety_.crashes += earlier.crashes;
  safety_.traces_learned_big += earlier.traces_learned_big;
  safety_.careful = safety_.careful || earlier.careful;
}

ServerSafety TraceFetchQueue::safety() const {
  MutexLock lock(mu_);
  ServerSafety s = safety_;
  s.effective_concurrency = limit_;
  s.effective_rate = settings_.requests_per_second * rate_scale_;
  return s;
}

bool TraceFetchQueue::is_distress(const TraceFetchResult& r) {
  if (r.outcome == Outcome::kDone || r.outcome == Outcome::kCancelled) return false;
  return is_server_failure(r.error);
}

bool TraceFetchQueue::is_exclusive(const TraceTask& task) const {
  return task.big || (safety_.careful && !task.size_known);
}

std::optional<TraceFetchQueue::Job> TraceFetchQueue::take_admissible() {
  if (queue_.empty() || deferred_ || exclusive_running_ > 0) return std::nullopt;
  Job& front = queue_.front();
  front.exclusive = is_exclusive(front.task);  // careful mode may have begun since queued
  if (front.exclusive ? running_ > 0 : running_ >= limit_) return std::nullopt;
  Job job = std::move(front);
  queue_.pop_front();
  ++running_;
  if (job.exclusive) ++exclusive_running_;
  if (job.task.big) last_big_ = clock_.mono();
  return job;
}

void TraceFetchQueue::worker_loop(std::stop_token) {
  for (;;) {
    Job job;
    std::string project;
    std::stop_token stop;
    {
      MutexLock lock(mu_);
      std::optional<Job> next;
      while (!shutdown_ && !(next = take_admissible())) changed_.wait(mu_);
      if (shutdown_) return;
      job = std::move(*next);
      project = project_;
      stop = round_stop_->get_token();
    }
    TraceFetchResult r = fetcher_.fetch(project, job.task, stop);
    {
      MutexLock lock(mu_);
      --running_;
      if (job.exclusive) --exclusive_running_;
      ++completions_;
      busy_.erase(job.task.trace_id);
      account(r);
      note_health(job, r);
    }
    changed_.notify_all();
  }
}

void TraceFetchQueue::account(const TraceFetchResult& r) {
  round_.requests += r.requests;
  round_.record_errors += r.record_errors;
  safety_.largest_response = std::max(safety_.largest_response, r.largest_response);
  if (r.learned_big) ++safety_.traces_learned_big;
  switch (r.outcome) {
    case Outcome::kDone:
      ++round_.traces_done;
      break;
    case Outcome::kRetry:
      ++round_.retries_scheduled;
      break;
    case Outcome::kFailed:
      ++round_.traces_failed;
      break;
    case Outcome::kDeferred:
      deferred_ = true;
      break;
    case Outcome::kBig:
      // Its progress is committed and it is big in the database: the next due_traces()
      // returns it as big, to be fetched alone.
      break;
    case Outcome::kCancelled:
      break;
    case Outcome::kFatal:
      if (round_.fatal.ok()) round_.fatal = r.error;
      if (round_stop_) round_stop_->request_stop();
      break;
  }
}

void TraceFetchQueue::note_health(const Job& job, const TraceFetchResult& r) {
  const auto now = clock_.mono();
  const bool big_response = job.task.big || r.largest_response > settings_.big_response_bytes;
  if (big_response) last_big_ = now;
  if (!is_distress(r)) {
    if (r.outcome != Outcome::kDone) return;  // 429, permanent errors: no health signal
    if (note_latency(r)) {
      healthy_streak_ = 0;
      decrease(fmt::format("small pages answered in {} ms, {} ms at best lately",
                           r.small_page_latency->count(), latency_floor_->count()));
      return;
    }
    if (slow_) return;  // no growth while the server is slow
    in_distress_ = false;
    burst_is_crash_ = false;
    if (++healthy_streak_ >= kHealthyPerStep * limit_ && (limit_ < cap_ || rate_scale_ < 1)) {
      limit_ = std::min(cap_, limit_ + 1);
      rate_scale_ = std::min(1.0, rate_scale_ + kRateStep);
      if (budget_) budget_->set_rate_scale(rate_scale_);
      healthy_streak_ = 0;
      log::info("server healthy again: up to {} traces in flight, {:.0f}% of the request rate",
                limit_, rate_scale_ * 100);
    }
    return;
  }
  healthy_streak_ = 0;
  if (!in_distress_) {
    in_distress_ = true;
    ++safety_.outages;
    // Multiplicative decrease, once per burst (the failures of one burst are one signal).
    decrease(r.error.message());
  }
  // The failures of one crash arrive in any order: the burst counts as a crash as soon as one
  // of them shows a big response in flight or just before.
  const bool big_recently = last_big_ && now - *last_big_ <= kCrashWindow;
  if (!burst_is_crash_ && (big_response || big_recently)) {
    burst_is_crash_ = true;
    ++safety_.crashes;
    if (!safety_.careful) {
      log::warn(
          "the server failed with a big response in flight: from now on traces of "
          "unknown size are fetched one at a time");
    }
    safety_.careful = true;
  }
}

void TraceFetchQueue::decrease(const std::string& why) {
  limit_ = std::max(1, limit_ / 2);
  rate_scale_ = std::max(kMinRateScale, rate_scale_ / 2);
  if (budget_) budget_->set_rate_scale(rate_scale_);
  log::warn(
      "the server is struggling ({}); down to {} traces in flight, {:.0f}% of the "
      "request rate",
      why, limit_, rate_scale_ * 100);
}

bool TraceFetchQueue::note_latency(const TraceFetchResult& r) {
  if (!latency_signal_ || !r.small_page_latency) return false;
  const Millis latency = *r.small_page_latency;
  if (!latency_floor_) {
    latency_floor_ = latency;
    return false;
  }
  const auto floor_ms = static_cast<double>(latency_floor_->count());
  const auto ms = static_cast<double>(latency.count());
  // The measured time includes waiting for the request budget: up to one pacing interval per
  // trace in flight. That wait is the client's own doing (and grows as the rate is cut), so it
  // never counts as the server being slow.
  const double interval_ms = settings_.requests_per_second > 0
                                 ? 1000.0 / (settings_.requests_per_second * rate_scale_)
                                 : 0.0;
  const Millis own_wait(static_cast<Millis::rep>(interval_ms * limit_));
  const bool slow =
      ms > kSlowFactor * floor_ms && latency > *latency_floor_ + kSlowMargin + own_wait;
  const bool fast = ms <= kFastFactor * floor_ms;
  latency_floor_ = std::min(latency, Millis(static_cast<Millis::rep>(floor_ms * kFloorDrift) + 1));
  if (fast) slow_ = false;
  if (!slow || slow_) return false;
  slow_ = true;
  return true;
}

TraceFetchRound TraceFetchQueue::run(const std::string& project, std::stop_token stop,
                                     const ProgressFn& progress) {
  {
    MutexLock lock(mu_);
    project_ = project;
    round_ = TraceFetchRound{};
    round_stop_.emplace();
    deferred_ = false;
    completions_ = 0;
  }
  // Forward a stop request to the workers (they use the round's own source so that a fatal
  // error can stop them too).
  std::stop_callback forward(stop, [this] {
    {
      MutexLock lock(mu_);
      if (round_stop_) round_stop_->request_stop();
    }
    changed_.notify_all();
  });
  auto report = [&](bool waiting) {
    if (!progress) return;
    int64_t done, total, retries;
    {
      MutexLock lock(mu_);
      done = round_.traces_done;
      total = round_.traces_total;
      retries = round_.retries_scheduled;
    }
    progress(done, total, retries, waiting);
  };

  const int refill_below = cap_;
  bool waiting = false;
  Status wait_error;
  for (;;) {
    bool deferred_idle = false;
    bool refill = false;
    bool idle = false;
    std::vector<std::string> exclude;
    {
      MutexLock lock(mu_);
      if (!round_.fatal.ok() || stop.stop_requested()) break;
      deferred_idle = deferred_ && running_ == 0;
      refill = !deferred_ && static_cast<int>(queue_.size()) < refill_below;
      if (refill) exclude.assign(busy_.begin(), busy_.end());
    }
    if (deferred_idle) {
      // The breaker is open: wait for the server (one probe per interval), then go on.
      report(true);
      auto w = gate_.wait_until_closed(settings_.max_wait, stop);
      if (w == ServerGate::Wait::kStopped) break;
      if (w == ServerGate::Wait::kTooLong) {
        waiting = true;
        wait_error =
            Status::Error(ErrorKind::kRetryable, "server unavailable (circuit breaker open)");
        break;
      }
      MutexLock lock(mu_);
      deferred_ = false;
      continue;
    }
    if (refill) {
      auto due = store_.due_traces(project, cap_ * 4, exclude);
      MutexLock lock(mu_);
      if (!due.ok()) {
        if (round_.fatal.ok()) round_.fatal = due.status();
        break;
      }
      for (auto& t : *due) {
        if (busy_.insert(t.trace_id).second) {
          queue_.push_back(Job{std::move(t), false});
          ++round_.traces_total;
        }
      }
      idle = queue_.empty() && running_ == 0 && !deferred_;
    }
    changed_.notify_all();
    if (idle) {
      auto next = store_.next_due_at(project);
      if (!next.ok()) {
        MutexLock lock(mu_);
        if (round_.fatal.ok()) round_.fatal = next.status();
        break;
      }
      if (!*next) break;  // nothing left to fetch
      auto at = parse_iso8601(**next);
      Millis wait = at ? std::chrono::duration_cast<Millis>(*at - clock_.now()) : Millis(0);
      if (wait > settings_.max_wait) {
        waiting = true;
        break;
      }
      report(true);
      if (wait.count() > 0 && !clock_.sleep_for(wait + Millis(1), stop)) break;
      continue;
    }
    report(false);
    MutexLock lock(mu_);
    const uint64_t seen = completions_;
    while (round_.fatal.ok() && !stop.stop_requested() && !(deferred_ && running_ == 0) &&
           completions_ == seen && !(queue_.empty() && running_ == 0)) {
      changed_.wait(mu_);
    }
  }
  // Wind down: nothing new starts, the fetches in flight finish (or stop, on a fatal error or
  // a stop request) before the round's state is read.
  TraceFetchRound out;
  {
    MutexLock lock(mu_);
    queue_.clear();
    if (!round_.fatal.ok() || stop.stop_requested()) round_stop_->request_stop();
    while (running_ > 0) changed_.wait(mu_);
    busy_.clear();
    out = round_;
  }
  out.waiting = waiting;
  if (!wait_error.ok()) out.error = wait_error;
  return out;
}

}  // namespace lfh
