// The trace fetch pool: long-lived workers that fetch due traces (TraceFetcher, one trace each)
// while keeping the server safe:
//
//   * at most `limit` traces in flight, where limit adapts (AIMD) between 1 and the configured
//     in-flight cap: halved when the server shows distress (5xx, nginx error pages, 524,
//     resets, timeouts), one more after a run of healthy fetches; the request rate follows the
//     same signal (halved, then back by 1/8 of the configured rate per healthy run, never above
//     it) when a RequestBudget is given;
//   * with use_latency_signal(true) (off by default, see docs/benchmarks.md: on a busy client
//     machine it mistook the client's own delays for the server's and halved a healthy sync),
//     rising latency counts as distress too, before any error: a small page answered more than
//     3 times (and 250 ms plus the client's own pacing wait) slower than the fastest one lately
//     halves the limit and the rate,
//     once per slow stretch (it ends with an answer within 1.5 times the fastest);
//   * a trace held as big (a page over big_response_bytes, remembered in the database) is
//     fetched *exclusively*: it starts only when nothing else is in flight and nothing else
//     starts while it runs;
//   * after the server crashed with a big response in flight ("careful" mode, remembered across
//     restarts through restore()), every trace whose size has never been seen is exclusive too:
//     any of them may be the next big one, and two of them together are what kills the server.
//
// Jobs start in queue order; an exclusive job at the front waits for the others to drain (it is
// never overtaken, so big traces cannot starve).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "http/rate_limiter.h"
#include "store/checkpoint_store.h"
#include "store/server_safety.h"
#include "sync/server_gate.h"
#include "sync/sync_settings.h"
#include "sync/trace_fetcher.h"

namespace lfh {

/// What one run() did.
struct TraceFetchRound {
  int64_t requests = 0;
  int64_t traces_total = 0;  // distinct traces handed to workers
  int64_t traces_done = 0;
  int64_t retries_scheduled = 0;
  int64_t traces_failed = 0;
  int64_t record_errors = 0;
  Status fatal;          // not OK: the pass must stop (auth, database)
  bool waiting = false;  // the next due trace (or the server) is further away than max_wait
  Status error;          // why it is waiting, when the server is the reason
};

class TraceFetchQueue {
 public:
  using ProgressFn =
      std::function<void(int64_t done, int64_t total, int64_t retries, bool waiting)>;

  /// Starts settings.workers worker threads (at least 1); they live until destruction. All
  /// references must outlive the queue. `budget` (optional): the request budget whose rate
  /// the queue scales with the same AIMD as its concurrency (RequestBudget::set_rate_scale).
  TraceFetchQueue(TraceFetcher& fetcher, CheckpointStore& store, ServerGate& gate, Clock& clock,
                  const SyncSettings& settings, RequestBudget* budget = nullptr);
  ~TraceFetchQueue();
  TraceFetchQueue(const TraceFetchQueue&) = delete;
  TraceFetchQueue& operator=(const TraceFetchQueue&) = delete;

  /// Fetches every trace of `project` that is due, and those that come due within
  /// settings.max_wait, then returns. Waits for an open breaker (ServerGate) up to max_wait.
  /// A stop request ends it promptly (progress committed). Not reentrant: one run at a time.
  /// `progress` (optional) is called from the calling thread.
  TraceFetchRound run(const std::string& project, std::stop_token stop,
                      const ProgressFn& progress = {});

  /// Counters and careful mode as persisted by an earlier process (the concurrency restarts
  /// from the cap).
  void restore(const ServerSafety& earlier);
  ServerSafety safety() const;
  /// Rising latency of small pages as a distress signal (off by default).
  void use_latency_signal(bool on) {
    MutexLock lock(mu_);
    latency_signal_ = on;
  }

  /// Distress seen in a fetch result: the server (or the way to it) failing, not a 429.
  static bool is_distress(const TraceFetchResult& r);

 private:
  struct Job {
    TraceTask task;
    bool exclusive = false;
  };

  void worker_loop(std::stop_token stop);
  bool is_exclusive(const TraceTask& task) const REQUIRES(mu_);
  /// The job that may start now, taken off the queue; nullopt when none may.
  std::optional<Job> take_admissible() REQUIRES(mu_);
  void account(const TraceFetchResult& r) REQUIRES(mu_);
  void note_health(const Job& job, const TraceFetchResult& r) REQUIRES(mu_);
  /// The latency signal: true when this answer starts a slow stretch.
  bool note_latency(const TraceFetchResult& r) REQUIRES(mu_);
  void decrease(const std::string& why) REQUIRES(mu_);

  TraceFetcher& fetcher_;
  CheckpointStore& store_;
  ServerGate& gate_;
  Clock& clock_;
  const SyncSettings& settings_;
  RequestBudget* const budget_;
  const int cap_;

  mutable Mutex mu_;
  std::condition_variable_any changed_;  // queue, completions, shutdown
  // The current round.
  std::string project_ GUARDED_BY(mu_);
  std::deque<Job> queue_ GUARDED_BY(mu_);
  std::set<std::string> busy_ GUARDED_BY(mu_);  // queued or in flight
  int running_ GUARDED_BY(mu_) = 0;
  int exclusive_running_ GUARDED_BY(mu_) = 0;
  uint64_t completions_ GUARDED_BY(mu_) = 0;
  bool deferred_ GUARDED_BY(mu_) = false;  // a worker found the breaker open
  std::optional<std::stop_source> round_stop_ GUARDED_BY(mu_);
  TraceFetchRound round_ GUARDED_BY(mu_);
  bool shutdown_ GUARDED_BY(mu_) = false;
  // Adaptive limit and health, across rounds.
  int limit_ GUARDED_BY(mu_);
  double rate_scale_ GUARDED_BY(mu_) = 1.0;  // share of the configured rate, (0, 1]
  int healthy_streak_ GUARDED_BY(mu_) = 0;
  bool in_distress_ GUARDED_BY(mu_) = false;             // inside a burst of failures
  bool burst_is_crash_ GUARDED_BY(mu_) = false;          // that burst already counted as a crash
  std::optional<Millis> latency_floor_ GUARDED_BY(mu_);  // fastest small page lately
  bool slow_ GUARDED_BY(mu_) = false;
  bool latency_signal_ GUARDED_BY(mu_) = false;  // inside a stretch of slow answers
  std::optional<std::chrono::steady_clock::time_point> last_big_
      GUARDED_BY(mu_);  // a big response in flight/seen
  ServerSafety safety_ GUARDED_BY(mu_);

  std::vector<std::jthread> workers_;  // last: started after everything above exists
};

}  // namespace lfh
