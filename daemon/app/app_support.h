// Shared steps of the commands: configuration, logging, connecting with the retry policy, the
// --max-wait bound on a silent server, the progress line.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "app/commands.h"
#include "app/runtime.h"
#include "app/server_watch.h"
#include "config/config.h"
#include "store/writer_lock.h"
#include "service/signals.h"

namespace lfh {

/// Loads the configuration, sets the log level (-q / -v / --log-level), registers the secret for
/// masking. On failure prints the error and returns nullopt; *exit_code is then set.
std::optional<Config> load_for_command(const CommonOptions& common, bool need_secret,
                                       int* exit_code);

/// Takes the one-writer lock beside config.database (sync, run, retry, reconcile). On failure
/// prints the error and returns nullopt; *exit_code is then kExitTempFail (another writer holds
/// it: try again later) or kExitIoError (the lock file is unusable).
std::optional<WriterLock> take_writer_lock(const Config& config, int* exit_code);

/// A refused connection is tried this many times in all, kRefusedRetryStep, 2 x that, ... apart
/// (about 1.5 s together): long enough for a server that is restarting, short enough for a
/// script to learn at once that nothing listens there.
inline constexpr int kRefusedAttempts = 3;
inline constexpr Millis kRefusedRetryStep{500};

/// engine.connect() under the retry policy of the commands, then copies the detected API
/// generation to the maintenance client:
///   - a name that does not resolve, a failing TLS handshake: not retried (kRetryable, which
///     the commands turn into exit 69);
///   - a refused connection: kRefusedAttempts attempts, about 1.5 s in all;
///   - other transient failures (timeouts, 5xx, 429): capped backoff honouring Retry-After,
///     up to retry.max_attempts, and never past `max_wait` from the start;
///   - keys refused (kAuth), configuration problems (kConfig), a stop (kCancelled): at once.
/// The error message names the base URL, the number of attempts and the last failure.
/// `single_attempt` (check): one attempt, the same messages.
Status connect_with_retry(Runtime& rt, Millis max_wait, std::stop_token stop,
                          bool single_attempt = false);

/// Stops `target` when waiting for the server would exceed `limit` (--max-wait): once it has
/// been silent (ServerWatch::silent_for) for that long, the bound that keeps a server that
/// accepts connections and never answers from holding `sync` whatever the curl timeouts are; or
/// as soon as it asks, with Retry-After, for a wait longer than that (the request budget holds
/// every request of the process until then, so nothing could happen within the bound). Checks
/// ten times a second on its own thread; stops checking when destroyed.
class SilenceGuard {
 public:
  enum class Reason { kNone, kSilent, kRetryAfter };
  SilenceGuard(const ServerWatch& watch, Clock& clock, Millis limit, std::stop_source target);
  ~SilenceGuard();
  SilenceGuard(const SilenceGuard&) = delete;
  SilenceGuard& operator=(const SilenceGuard&) = delete;
  /// Why it stopped the target (kNone: it did not).
  Reason reason() const { return reason_.load(); }
  /// The Retry-After that made it stop (kRetryAfter).
  Millis retry_after() const { return Millis(retry_after_ms_.load()); }
  Millis limit() const { return limit_; }

 private:
  Millis limit_;
  std::atomic<Reason> reason_{Reason::kNone};
  std::atomic<Millis::rep> retry_after_ms_{0};
  std::jthread thread_;
};

/// The stop of a command that talks to the server: requested by SIGINT/SIGTERM, or by a
/// SilenceGuard (bound: max(--max-wait, connect timeout)).
class CommandStop {
 public:
  /// `signals` must be installed; `rt` outlives this object.
  CommandStop(const SignalWatcher& signals, Runtime& rt, Millis max_wait);
  std::stop_token token() const { return source_.get_token(); }
  bool requested() const { return source_.stop_requested(); }
  /// After a stop: prints why and returns the exit code: 128 + the signal (130 SIGINT, 143
  /// SIGTERM), 69 when the server stopped answering, 75 when it asked for a wait longer than
  /// --max-wait (the next run continues).
  int report() const;

 private:
  const SignalWatcher& signals_;
  const Config& config_;
  std::stop_source source_;
  std::stop_callback<std::function<void()>> forward_;
  SilenceGuard guard_;
};

/// What the progress line shows, as plain figures (render_progress is pure, for tests).
struct ProgressFigures {
  std::string phase;                  // PassProgress::phase
  int64_t done = 0;                   // traces fetched in this pass
  int64_t remaining = 0;              // traces still queued (pending + waiting for a retry)
  double elapsed_seconds = 0;         // since the trace phase began
  double budget_per_second = 0;       // the configured request rate
  std::optional<Millis> retry_after;  // the server's last Retry-After, while it lasts
  std::optional<Millis> retry_after_left;
  int64_t retries_waiting = 0;
};

/// "traces 39/1017 (3.3/s), ETA 3m15s at 5 requests/s",
/// "traces 39/1017 (3.3/s), waiting for the server (Retry-After 48 s, 31 s left)".
/// The ETA is the queued traces over the configured budget (each trace costs at least one
/// request), not an extrapolation from the traces started so far.
std::string render_progress(const ProgressFigures& f);

/// The progress line of `sync` on stderr (log::set_status_line, so log lines never glue onto
/// it), redrawn every second from its own thread so that a long wait for the server says so.
/// Disabled: does nothing.
class ProgressLine {
 public:
  /// remaining(): traces still queued, or nullopt when unknown; called from the ticker thread.
  ProgressLine(bool enabled, Clock& clock, double budget_per_second, const ServerWatch& watch,
               std::function<std::optional<int64_t>()> remaining);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  /// From the pass thread (SyncEngine::on_progress).
  void update(const PassProgress& p);

 private:
  void draw();

  bool enabled_;
  Clock& clock_;
  double budget_per_second_;
  const ServerWatch& watch_;
  std::function<std::optional<int64_t>()> remaining_;
  std::mutex mu_;
  PassProgress last_;                                                    // guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> traces_started_;  // guarded by mu_
  std::jthread ticker_;
};

/// The configured request rate in requests per second.
double budget_per_second(const Config& c);

}  // namespace lfh
