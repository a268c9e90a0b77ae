#include "app/app_support.h"

#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "app/exit_codes.h"
#include "core/log.h"
#include "http/backoff.h"
#include "http/curl_errors.h"

namespace lfh {
namespace {

std::string human_duration(double seconds) {
  if (seconds < 0) seconds = 0;
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string what_failed(TransportFailure failure) {
  switch (failure) {
    case TransportFailure::kUnresolved:
      return "the host name does not resolve (not retried)";
    case TransportFailure::kTlsHandshake:
      return "the TLS handshake failed (not retried; is it an https URL for a plain-http "
             "server?)";
    case TransportFailure::kRefused:
      return "connection refused";
    default:
      return "";
  }
}

}  // namespace

void print_error(const std::string& message) {
  std::string line = "lfharvest: " + message;
  // Under systemd the journal reads "<3>" as priority "err" (sd-daemon(3)).
  if (std::getenv("JOURNAL_STREAM") != nullptr) line.insert(0, "<3>");
  log::print_line(line);
}

void print_error(std::string_view context, const std::string& message) {
  // Layers that already name their context ("export: unknown format") are not prefixed twice.
  const std::string prefix = std::string(context) + ": ";
  print_error(message.starts_with(prefix) ? message : prefix + message);
}

std::optional<Config> load_for_command(const CommonOptions& common, bool need_secret,
                                       int* exit_code) {
  LoadOptions options;
  options.need_secret = need_secret;
  auto config = load_config(common.overrides, process_env(), options);
  if (!config.ok()) {
    log::init(log::Level::kInfo);
    print_error(config.status().message());
    *exit_code = exit_code_for(config.status());
    return std::nullopt;
  }
  log::init(config->log_level);
  log::add_secret(config->secret_key);
  if (!config->config_path.empty()) {
    log::debug("configuration from {} ({})", config->config_path, config->config_origin);
  }
  return std::move(config).value();
}

std::optional<WriterLock> take_writer_lock(const Config& config, int* exit_code) {
  auto lock = WriterLock::acquire(config.database);
  if (!lock.ok()) {
    print_error(lock.status().message());
    *exit_code = lock.status().kind() == ErrorKind::kRetryable ? kExitTempFail : kExitIoError;
    return std::nullopt;
  }
  return std::move(lock).value();
}

Status connect_with_retry(Runtime& rt, Millis max_wait, std::stop_token stop, bool single_attempt) {
  SeededRandom random;
  const Config& c = rt.config();
  const auto start = rt.clock().mono();
  for (int attempt = 0;; ++attempt) {
    Status s = rt.engine().connect(stop);
    if (s.ok()) {
      rt.share_generation();
      return Status::Ok();
    }
    const bool transient = s.kind() == ErrorKind::kRetryable || s.kind() == ErrorKind::kRateLimited;
    if (!transient) return s;
    const TransportFailure failure = transport_failure(s);
    auto give_up = [&](std::string_view why) {
      const double seconds = std::chrono::duration<double>(rt.clock().mono() - start).count();
      std::string reason = what_failed(failure);
      return Status::Error(
          ErrorKind::kRetryable,
          fmt::format("cannot reach the Langfuse server at {}{}{} ({} attempt{} in {:.1f} s{}): {}",
                      c.base_url, reason.empty() ? "" : ": ", reason, attempt + 1,
                      attempt == 0 ? "" : "s", seconds, why, s.message()));
    };
    if (single_attempt || transport_failure_is_permanent(failure)) return give_up("");
    Millis delay{0};
    int limit = c.max_attempts;
    if (failure == TransportFailure::kRefused) {
      limit = std::min(limit, kRefusedAttempts);
      delay = kRefusedRetryStep * (attempt + 1);
    } else {
      delay = backoff_delay(attempt, c.backoff_base, c.backoff_cap, random);
      if (s.retry_after_ms()) delay = std::max(delay, Millis(*s.retry_after_ms()));
    }
    if (attempt + 1 >= limit) return give_up("");
    if (rt.clock().mono() + delay - start > max_wait) {
      return give_up(fmt::format("; the next attempt would be past --max-wait {} s",
                                 std::chrono::duration_cast<Seconds>(max_wait).count()));
    }
    log::warn("cannot reach the server ({}); retrying in {} ms", s.message(), delay.count());
    if (!rt.clock().sleep_for(delay, stop)) {
      return Status::Error(ErrorKind::kCancelled, "stopped");
    }
  }
}

SilenceGuard::SilenceGuard(const ServerWatch& watch, Clock& clock, Millis limit,
                           std::stop_source target)
    : limit_(limit) {
  thread_ = std::jthread([this, &watch, &clock, target](std::stop_token self) mutable {
    while (clock.sleep_for(Millis(100), self)) {
      const auto now = clock.mono();
      Reason reason = Reason::kNone;
      if (watch.silent_for(now) >= limit_) {
        reason = Reason::kSilent;
      } else if (const ServerWatch::Snapshot w = watch.snapshot();
                 w.retry_after_until && *w.retry_after_until - now > limit_) {
        retry_after_ms_.store(w.retry_after->count());
        reason = Reason::kRetryAfter;
      }
      if (reason != Reason::kNone) {
        reason_.store(reason);
        target.request_stop();
        return;
      }
    }
  });
}

SilenceGuard::~SilenceGuard() {
  thread_.request_stop();
}

CommandStop::CommandStop(const SignalWatcher& signals, Runtime& rt, Millis max_wait)
    : signals_(signals),
      config_(rt.config()),
      forward_(signals.stop_token(), std::function<void()>([this] { source_.request_stop(); })),
      // A connection may take connect_timeout to open: a shorter bound would stop a healthy
      // but distant server.
      guard_(rt.watch(), rt.clock(),
             std::max<Millis>(max_wait,
                              std::chrono::duration_cast<Millis>(rt.config().connect_timeout)),
             source_) {}

int CommandStop::report() const {
  if (int sig = signals_.stop_signal(); sig != 0) {
    log::info("stopped by {}; everything fetched so far is saved", sig == SIGINT    ? "SIGINT"
                                                                   : sig == SIGTERM ? "SIGTERM"
                                                                                    : "a signal");
    return exit_code_for_signal(sig);
  }
  if (guard_.reason() == SilenceGuard::Reason::kRetryAfter) {
    log::warn(
        "the server asked to wait {} s (Retry-After), longer than --max-wait {} s; stopping, "
        "the next run continues where this one stopped",
        (guard_.retry_after().count() + 999) / 1000,
        std::chrono::duration_cast<Seconds>(guard_.limit()).count());
    return kExitTempFail;
  }
  if (guard_.reason() == SilenceGuard::Reason::kSilent) {
    print_error(fmt::format(
        "the Langfuse server at {} stopped answering: nothing came back for {} s (the bound is "
        "--max-wait, at least the connect timeout); everything fetched so far is saved",
        config_.base_url, std::chrono::duration_cast<Seconds>(guard_.limit()).count()));
    return kExitUnavailable;
  }
  return kExitFailure;
}

std::string render_progress(const ProgressFigures& f) {
  if (f.phase == "scores") return "polling scores...";
  if (f.phase == "maintenance") return "maintenance: re-scanning scores, sweeping deletions...";
  const int64_t queued = f.done + f.remaining;
  const double rate = f.elapsed_seconds > 0 ? static_cast<double>(f.done) / f.elapsed_seconds : 0;
  std::string text = fmt::format("traces {}/{} ({:.1f}/s)", f.done, queued, rate);
  if (f.retry_after && f.retry_after_left && f.retry_after_left->count() > 0) {
    return text + fmt::format(", waiting for the server (Retry-After {} s, {} s left)",
                              (f.retry_after->count() + 999) / 1000,
                              (f.retry_after_left->count() + 999) / 1000);
  }
  if (f.phase == "waiting") {
    return text + (f.retries_waiting > 0
                       ? fmt::format(", waiting for the server ({} retries due)", f.retries_waiting)
                       : std::string(", waiting for the server"));
  }
  if (f.budget_per_second > 0) {
    text += fmt::format(", ETA {} at {:g} requests/s",
                        human_duration(static_cast<double>(f.remaining) / f.budget_per_second),
                        f.budget_per_second);
  }
  if (f.retries_waiting > 0) text += fmt::format(", {} retries scheduled", f.retries_waiting);
  return text;
}

ProgressLine::ProgressLine(bool enabled, Clock& clock, double budget_per_second,
                           const ServerWatch& watch,
                           std::function<std::optional<int64_t>()> remaining)
    : enabled_(enabled),
      clock_(clock),
      budget_per_second_(budget_per_second),
      watch_(watch),
      remaining_(std::move(remaining)) {
  if (!enabled_) return;
  log::enable_status_line(true);
  // A second is often enough for a person and rare enough to cost nothing (one COUNT query).
  ticker_ = std::jthread([this](std::stop_token stop) {
    while (clock_.sleep_for(Millis(1000), stop)) draw();
  });
}

ProgressLine::~ProgressLine() {
  if (!enabled_) return;
  ticker_.request_stop();
  if (ticker_.joinable()) ticker_.join();
  log::enable_status_line(false);
}

void ProgressLine::update(const PassProgress& p) {
  if (!enabled_) return;
  {
    std::lock_guard lock(mu_);
    last_ = p;
    if (!traces_started_ && (p.phase == "traces" || p.phase == "waiting")) {
      traces_started_ = clock_.mono();
    }
  }
  if (p.phase != "traces") draw();  // phase changes at once; trace counts with the ticker
}

void ProgressLine::draw() {
  ProgressFigures f;
  std::optional<std::chrono::steady_clock::time_point> started;
  {
    std::lock_guard lock(mu_);
    f.phase = last_.phase;
    f.done = last_.traces_done;
    f.retries_waiting = last_.retries_waiting;
    started = traces_started_;
  }
  if (f.phase.empty()) return;
  const auto now = clock_.mono();
  if (started) f.elapsed_seconds = std::chrono::duration<double>(now - *started).count();
  f.remaining = remaining_ ? remaining_().value_or(0) : 0;
  f.budget_per_second = budget_per_second_;
  const ServerWatch::Snapshot w = watch_.snapshot();
  if (w.retry_after && w.retry_after_until && *w.retry_after_until > now) {
    f.retry_after = w.retry_after;
    f.retry_after_left = std::chrono::duration_cast<Millis>(*w.retry_after_until - now);
  }
  log::set_status_line(render_progress(f));
}

double budget_per_second(const Config& c) {
  return c.requests_per_minute ? *c.requests_per_minute / 60.0 : c.requests_per_second;
}

}  // namespace lfh
