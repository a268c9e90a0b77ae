#include "app/app_support.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "app/exit_codes.h"
#include "core/log.h"
#include "http/backoff.h"

namespace lfh {

void print_error(const std::string& message) {
  std::string line = log::redact("lfharvest: " + message);
  // Under systemd the journal reads "<3>" as priority "err" (sd-daemon(3)).
  if (std::getenv("JOURNAL_STREAM") != nullptr) line.insert(0, "<3>");
  std::fprintf(stderr, "%s\n", line.c_str());
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

Status connect_with_retry(Runtime& rt, Millis max_wait, std::stop_token stop, bool* waiting) {
  if (waiting) *waiting = false;
  SeededRandom random;
  const Config& c = rt.config();
  Millis waited{0};
  for (int attempt = 0;; ++attempt) {
    Status s = rt.engine().connect(stop);
    if (s.ok()) {
      rt.share_generation();
      return Status::Ok();
    }
    const bool transient = s.kind() == ErrorKind::kRetryable || s.kind() == ErrorKind::kRateLimited;
    if (!transient) return s;
    Millis delay = backoff_delay(attempt, c.backoff_base, c.backoff_cap, random);
    if (s.retry_after_ms()) delay = std::max(delay, Millis(*s.retry_after_ms()));
    const bool exhausted = attempt + 1 >= c.max_attempts;
    if (exhausted || waited + delay > max_wait) {
      if (waiting && !exhausted) *waiting = true;
      return Status::Error(ErrorKind::kRetryable,
                           fmt::format("cannot reach the Langfuse server at {} after {} "
                                       "attempts: {}",
                                       c.base_url, attempt + 1, s.message()));
    }
    log::warn("cannot reach the server ({}); retrying in {} ms", s.message(), delay.count());
    if (!rt.clock().sleep_for(delay, stop)) {
      return Status::Error(ErrorKind::kCancelled, "stopped");
    }
    waited += delay;
  }
}

ProgressLine::ProgressLine()
    : tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() {
  clear();
}

void ProgressLine::update(const PassProgress& p) {
  if (!tty_) return;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string text;
  if (p.phase == "traces" || p.phase == "waiting") {
    double rate = elapsed > 0 ? static_cast<double>(p.traces_done) / elapsed : 0;
    int64_t left = std::max<int64_t>(0, p.traces_total - p.traces_done);
    std::string eta = rate > 0 ? fmt::format("{:.0f}s", static_cast<double>(left) / rate) : "?";
    text = fmt::format("traces {}/{} ({:.1f}/s, ETA {}){}{}", p.traces_done, p.traces_total, rate,
                       eta, p.retries_waiting ? fmt::format(", {} retries", p.retries_waiting) : "",
                       p.phase == "waiting" ? ", waiting for retries" : "");
  } else {
    text = p.phase == "scores" ? "polling scores..." : "maintenance...";
  }
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::clear() {
  if (tty_ && shown_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }
}

}  // namespace lfh
