// `lfharvest run`: the long-running service.
//
// Order of events: READY=1 once the database is open and migrated; then connect (retrying while
// the server is down: a service must not exit because Langfuse restarts); then one pass per poll
// interval. STATUS= after each step, WATCHDOG=1 from a pinger that only pings while the main
// loop has shown progress within the watchdog interval, STOPPING=1 on shutdown. SIGHUP reloads
// the configuration; a bad one is reported and the old one kept.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "app/app_support.h"
#include "app/commands.h"
#include "app/exit_codes.h"
#include "core/log.h"
#include "core/time_format.h"
#include "export/atomic_file.h"
#include "service/notify.h"
#include "service/service_counters.h"
#include "service/signals.h"
#include "service/status_view.h"
#include "store/status_queries.h"

namespace lfh {
namespace {

// Pings the systemd watchdog at half its interval while the service shows signs of life: a beat
// from the main loop (each step of a pass, each slice of a sleep) or HTTP activity (a request
// granted by the budget or finished). Some stretches are silent though healthy: a score poll
// reports no steps however many pages it reads, a retry wait lasts up to the poll interval, one
// request up to request_timeout after waiting for the budget. So silence is tolerated for
// `grace` (at least the watchdog interval); after that the pinger stops and systemd restarts the
// service one watchdog interval later.
class WatchdogPinger {
 public:
  /// activity: a counter that grows with HTTP activity; called from the pinger's thread.
  WatchdogPinger(const Notifier& notifier, Clock& clock, Millis allowed_silence,
                 std::function<std::uint64_t()> activity)
      : notifier_(notifier), clock_(clock), activity_(std::move(activity)) {
    auto interval = Notifier::watchdog_interval();
    if (!interval || !notifier_.enabled()) return;
    interval_ = *interval;
    set_grace(allowed_silence);
    beat();
    thread_ = std::jthread([this](std::stop_token stop) {
      std::uint64_t seen = activity_();
      while (clock_.sleep_for(interval_ / 2, stop)) {
        if (const std::uint64_t now = activity_(); now != seen) {
          seen = now;
          beat();
        }
        const auto since = clock_.mono().time_since_epoch().count() - last_beat_.load();
        if (std::chrono::steady_clock::duration(since) < std::max<Millis>(interval_, grace())) {
          notifier_.watchdog();
        }
      }
    });
  }
  void beat() { last_beat_.store(clock_.mono().time_since_epoch().count()); }
  void set_grace(Millis allowed_silence) { grace_ms_.store(allowed_silence.count()); }

 private:
  Millis grace() const { return Millis(grace_ms_.load()); }

  const Notifier& notifier_;
  Clock& clock_;
  std::function<std::uint64_t()> activity_;
  Millis interval_{0};
  std::atomic<std::chrono::steady_clock::rep> last_beat_{0};
  std::atomic<Millis::rep> grace_ms_{0};
  std::jthread thread_;
};

// The longest healthy silence of the main loop under `c`: a wait for a retry (up to the poll
// interval), a wait for the (maintenance) request budget, one whole request, and a margin.
Millis silence_allowed(const Config& c) {
  const double per_second =
      c.requests_per_minute ? *c.requests_per_minute / 60.0 : c.requests_per_second;
  const double share = c.maintenance_share > 0 ? c.maintenance_share : 1.0;
  const auto budget_wait = Millis(static_cast<Millis::rep>(1000.0 / (per_second * share)));
  return std::chrono::duration_cast<Millis>(c.poll_interval + c.request_timeout) + budget_wait +
         std::chrono::minutes(1);
}

// Sleeps `duration` in slices of at most a second, beating the watchdog, until stopped or a
// reload is pending.
void sleep_alive(Clock& clock, Millis duration, std::stop_token stop, WatchdogPinger& watchdog,
                 const SignalWatcher& signals) {
  const auto wake = clock.mono() + duration;
  while (!stop.stop_requested() && clock.mono() < wake) {
    watchdog.beat();
    auto slice =
        std::min<std::chrono::steady_clock::duration>(wake - clock.mono(), std::chrono::seconds(1));
    clock.sleep_until(clock.mono() + slice, stop);
    if (signals.reload_pending()) break;
  }
}

std::string status_line(const PassReport& r, SysTime next_poll) {
  auto t = format_iso8601(next_poll);
  return fmt::format("synced {}/{} traces, {} waiting to retry, {} failed; next poll {}",
                     r.counts.done, r.counts.total(), r.counts.retry + r.counts.pending,
                     r.counts.failed, t.substr(11, 8));
}

void write_metrics_file(const std::string& path, const std::string& db) {
  if (path.empty()) return;
  auto snapshot = read_status(db);
  if (!snapshot.ok()) return;
  auto file = AtomicFile::create(path);
  if (!file.ok()) {
    log::warn("metrics file {}: {}", path, file.status().message());
    return;
  }
  Status s = file->write(render_prometheus(*snapshot));
  // node_exporter reads the file as another user, and it holds nothing secret: make it
  // world-readable before it appears under its name (the umask of the unit is 0077).
  if (s.ok() && ::chmod(file->temp_path().c_str(), 0644) != 0) {
    log::warn("metrics file {}: cannot make it readable by node_exporter", path);
  }
  if (s.ok()) s = file->commit();
  if (!s.ok()) log::warn("metrics file {}: {}", path, s.message());
}

}  // namespace

int cmd_run(const CommonOptions& common) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  auto writer = take_writer_lock(*config, &code);
  if (!writer) return code;

  SignalWatcher signals;
  signals.install();  // before any thread starts
  std::stop_token stop = signals.stop_token();
  Notifier notifier = Notifier::from_environment();

  auto rt = Runtime::create(*config);
  if (!rt.ok()) {
    print_error(rt.status().message());
    return exit_code_for(rt.status());
  }
  std::unique_ptr<Runtime> runtime = std::move(rt).value();
  std::mutex runtime_mu;  // the watchdog thread reads the HTTP counters; a reload swaps runtime
  notifier.ready();
  notifier.status("database ready; connecting to " + config->base_url);
  SystemClock watchdog_clock;
  WatchdogPinger watchdog(notifier, watchdog_clock, silence_allowed(*config), [&] {
    std::lock_guard lock(runtime_mu);
    const auto stats = runtime->http_stats();
    return stats.requests + stats.transport_errors + stats.cancelled + stats.bytes_received;
  });
  // STOPPING=1 as soon as the stop is requested (from the signal thread), not after the pass
  // has wound down: systemd then shows "deactivating" at once.
  std::atomic<bool> stopping_sent{false};
  std::stop_callback announce_stop(stop, [&] {
    if (!stopping_sent.exchange(true)) notifier.stopping();
  });
  log::info("lfharvest service started (database {}, poll every {}s)", config->database,
            config->poll_interval.count());

  bool connected = false;
  ServiceCounters counters;
  if (auto prev = runtime->store().meta("service"); prev.ok() && *prev) {
    counters = ServiceCounters::from_json(**prev);
  }
  auto http_before = runtime->http_stats();
  int exit_code = kExitOk;

  while (!stop.stop_requested()) {
    watchdog.beat();
    if (signals.take_reload()) {
      notifier.reloading();
      // load_config, not load_for_command: a bad file must go to the log as an error (with its
      // journal priority) and must not reset the running log level.
      auto fresh = load_config(common.overrides, process_env(), LoadOptions{});
      if (!fresh.ok()) {
        log::error("reload: {}; keeping the running configuration", fresh.status().message());
      } else {
        log::add_secret(fresh->secret_key);
        // A reload onto another database takes that database's writer lock first.
        Result<std::unique_ptr<Runtime>> next = Status::Error(ErrorKind::kFatal, "not created");
        std::optional<WriterLock> fresh_writer;
        if (fresh->database != config->database) {
          auto taken = WriterLock::acquire(fresh->database);
          if (taken.ok()) {
            fresh_writer = std::move(taken).value();
          } else {
            next = taken.status();
          }
        }
        if (fresh->database == config->database || fresh_writer) next = Runtime::create(*fresh);
        if (!next.ok()) {
          log::error("reload: {}; keeping the running configuration", next.status().message());
        } else {
          {
            std::lock_guard lock(runtime_mu);
            runtime = std::move(next).value();
          }
          if (fresh_writer) writer = std::move(fresh_writer);
          config = std::move(fresh).value();
          log::set_level(config->log_level);
          watchdog.set_grace(silence_allowed(*config));
          connected = false;
          http_before = runtime->http_stats();
          log::info("configuration reloaded");
        }
      }
      notifier.ready();
    }
    if (!connected) {
      Status s = connect_with_retry(*runtime, config->poll_interval, stop);
      if (s.kind() == ErrorKind::kCancelled) break;
      if (!s.ok()) {
        if (s.kind() == ErrorKind::kAuth || s.kind() == ErrorKind::kConfig) {
          print_error(s.message());
          exit_code = exit_code_for(s);
          break;
        }
        log::warn("{}; trying again in {}s", s.message(), config->poll_interval.count());
        notifier.status("server unreachable: " + s.message());
        (void)runtime->store().record_event(std::nullopt, "error", "connect", "", s.message());
        sleep_alive(runtime->clock(), config->poll_interval, stop, watchdog, signals);
        continue;
      }
      connected = true;
    }

    runtime->engine().settings().max_wait = config->poll_interval;
    runtime->engine().on_progress = [&](const PassProgress& p) {
      watchdog.beat();
      if (p.phase == "traces" && p.traces_total > 0) {
        notifier.status(fmt::format("fetching traces {}/{}, {} retries scheduled", p.traces_done,
                                    p.traces_total, p.retries_waiting));
      }
    };
    PassReport report = runtime->engine().run_pass(stop);
    watchdog.beat();

    auto http_after = runtime->http_stats();
    add_http_delta(counters, http_before, http_after);
    http_before = http_after;
    counters.passes += 1;
    counters.retries_scheduled += static_cast<uint64_t>(report.retries_scheduled);
    counters.breaker_opens = runtime->breaker().counters().opens;
    counters.breaker_state =
        runtime->breaker().state() == CircuitBreaker::State::kOpen ? "open" : "closed";
    counters.updated_at = format_iso8601(runtime->clock().now());
    (void)runtime->store().set_meta("service", counters.to_json());
    (void)runtime->store().checkpoint_wal();
    write_metrics_file(config->metrics_textfile, config->database);

    if (report.outcome == PassReport::Outcome::kCancelled) break;
    if (report.outcome == PassReport::Outcome::kFatal) {
      const ErrorKind k = report.error.kind();
      if (k == ErrorKind::kAuth || k == ErrorKind::kConfig || k == ErrorKind::kIo ||
          k == ErrorKind::kCorrupt) {
        print_error(report.error.message());
        exit_code = exit_code_for(report.error);
        break;
      }
      // The server is failing beyond the retry policy: keep serving, try again next interval.
      log::warn("pass failed: {}", report.error.message());
    } else if (report.traces_done > 0 || report.scores_new > 0 ||
               report.maintenance.edits_seen > 0 || report.maintenance.deletions_seen > 0) {
      log::info("pass: {} new scores, {} traces fetched, {} edits, {} deletions, {} requests",
                report.scores_new, report.traces_done, report.maintenance.edits_seen,
                report.maintenance.deletions_seen, report.requests);
    }
    const SysTime next_poll = runtime->clock().now() + config->poll_interval;
    notifier.status(status_line(report, next_poll));
    // Sleep in slices so the watchdog sees a live loop and a reload is picked up promptly.
    sleep_alive(runtime->clock(), config->poll_interval, stop, watchdog, signals);
  }
  if (!stopping_sent.exchange(true)) notifier.stopping();
  log::info("lfharvest service stopped");
  return exit_code;
}

}  // namespace lfh
