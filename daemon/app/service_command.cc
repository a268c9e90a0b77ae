// `lfharvest run`: the long-running service.
//
// Order of events: READY=1 once the database is open and migrated; then connect (retrying while
// the server is down: a service must not exit because Langfuse restarts); then one pass per poll
// interval. STATUS= after each step, WATCHDOG=1 from a pinger that only pings while the main
// loop has shown progress within the watchdog interval, STOPPING=1 on shutdown. SIGHUP reloads
// the configuration; a bad one is reported and the old one kept.
#include <fmt/format.h>

#include <atomic>
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

// Pings the systemd watchdog at half its interval while the main loop keeps beating.
class WatchdogPinger {
 public:
  WatchdogPinger(const Notifier& notifier, Clock& clock) : notifier_(notifier), clock_(clock) {
    auto interval = Notifier::watchdog_interval();
    if (!interval || !notifier_.enabled()) return;
    interval_ = *interval;
    beat();
    thread_ = std::jthread([this](std::stop_token stop) {
      while (clock_.sleep_for(interval_ / 2, stop)) {
        auto since = clock_.mono() - std::chrono::steady_clock::time_point(
                                         std::chrono::steady_clock::duration(last_beat_.load()));
        if (since < interval_) notifier_.watchdog();
      }
    });
  }
  void beat() { last_beat_.store(clock_.mono().time_since_epoch().count()); }

 private:
  const Notifier& notifier_;
  Clock& clock_;
  Millis interval_{0};
  std::atomic<std::chrono::steady_clock::rep> last_beat_{0};
  std::jthread thread_;
};

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
  if (s.ok()) s = file->commit();
  if (!s.ok()) log::warn("metrics file {}: {}", path, s.message());
}

}  // namespace

int cmd_run(const CommonOptions& common) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;

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
  notifier.ready();
  notifier.status("database ready; connecting to " + config->base_url);
  WatchdogPinger watchdog(notifier, runtime->clock());
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
      int reload_code = kExitOk;
      auto fresh = load_for_command(common, true, &reload_code);
      if (!fresh) {
        log::error("reload: keeping the running configuration");
      } else {
        auto next = Runtime::create(*fresh);
        if (!next.ok()) {
          log::error("reload: {}; keeping the running configuration", next.status().message());
        } else {
          runtime = std::move(next).value();
          config = fresh;
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
        runtime->clock().sleep_for(config->poll_interval, stop);
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
    const auto wake = runtime->clock().mono() + config->poll_interval;
    while (!stop.stop_requested() && runtime->clock().mono() < wake) {
      watchdog.beat();
      auto slice = std::min<std::chrono::steady_clock::duration>(
          wake - runtime->clock().mono(), std::chrono::seconds(1));
      runtime->clock().sleep_until(runtime->clock().mono() + slice, stop);
      if (signals.reload_pending()) break;
    }
  }
  notifier.stopping();
  log::info("lfharvest service stopped");
  return exit_code;
}

}  // namespace lfh
