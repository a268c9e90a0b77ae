#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace lfh::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_secrets_mu;
std::vector<std::string> g_secrets;  // guarded by g_secrets_mu
// stderr is shared by log lines and the status line: one writer at a time.
std::mutex g_output_mu;
bool g_status_enabled = false;  // guarded by g_output_mu
std::string g_status_line;      // guarded by g_output_mu; shown when not empty

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("lfharvest",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
    // UTC with its Z: the same clock as status output and the database, whatever TZ says.
    l->set_pattern(journal ? "%v" : "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v",
                   spdlog::pattern_time_type::utc);
    return l;
  }();
  return instance;
}

// sd-daemon(3) priority prefixes: <3> err, <4> warning, <6> info, <7> debug.
const char* journal_prefix(Level level) {
  switch (level) {
    case Level::kError:
      return "<3>";
    case Level::kWarn:
      return "<4>";
    case Level::kInfo:
      return "<6>";
    default:
      return "<7>";
  }
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

bool parse_level(std::string_view text, Level& out) {
  static const std::pair<std::string_view, Level> kNames[] = {
      {"trace", Level::kTrace}, {"debug", Level::kDebug},  {"info", Level::kInfo},
      {"warn", Level::kWarn},   {"warning", Level::kWarn}, {"error", Level::kError},
      {"off", Level::kOff}};
  for (const auto& [name, level] : kNames) {
    if (text == name) {
      out = level;
      return true;
    }
  }
  return false;
}

void init(Level level) {
  set_level(level);
  logger();
}

void set_level(Level level) {
  g_level.store(level);
}

bool enabled(Level level) {
  Level current = g_level.load();
  return current != Level::kOff && level >= current;
}

void add_secret(const std::string& secret) {
  if (secret.empty()) return;
  std::lock_guard lock(g_secrets_mu);
  g_secrets.push_back(secret);
}

std::string redact(std::string text) {
  std::lock_guard lock(g_secrets_mu);
  for (const auto& secret : g_secrets) {
    for (size_t pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

void write(Level level, std::string_view message) {
  std::string line = redact(std::string(message));
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  if (journal) line.insert(0, journal_prefix(level));
  std::lock_guard lock(g_output_mu);
  const bool redraw = g_status_enabled && !g_status_line.empty();
  if (redraw) std::fputs("\r\033[K", stderr);
  logger()->log(to_spdlog(level), "{}", line);
  if (redraw) {
    std::fputs(g_status_line.c_str(), stderr);
    std::fflush(stderr);
  }
}

void print_line(std::string_view text) {
  std::string line = redact(std::string(text));
  std::lock_guard lock(g_output_mu);
  const bool redraw = g_status_enabled && !g_status_line.empty();
  std::fprintf(stderr, "%s%s\n", redraw ? "\r\033[K" : "", line.c_str());
  if (redraw) std::fputs(g_status_line.c_str(), stderr);
  std::fflush(stderr);
}

void enable_status_line(bool on) {
  std::lock_guard lock(g_output_mu);
  if (!on && g_status_enabled && !g_status_line.empty()) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  g_status_enabled = on;
  if (!on) g_status_line.clear();
}

void set_status_line(std::string text) {
  text = redact(std::move(text));
  std::lock_guard lock(g_output_mu);
  if (!g_status_enabled) return;
  if (text == g_status_line) return;
  std::fputs("\r\033[K", stderr);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  g_status_line = std::move(text);
}

}  // namespace lfh::log
