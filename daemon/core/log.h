// Logging facade. Only core/log.cc includes spdlog (slow to compile); everything else formats
// with fmt through these helpers. Messages go to stderr, stamped in UTC with a Z
// ("2026-12-01T22:39:38.123Z info ..."), the same convention as `lfharvest status`. Under
// systemd ($JOURNAL_STREAM set) lines carry "<N>" syslog priority prefixes and no timestamp, so
// journald keeps the levels and its own time.
// Every registered secret is replaced by "***" in every line before it is written.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace lfh::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

/// Parses "trace|debug|info|warn|error|off"; false on anything else.
bool parse_level(std::string_view text, Level& out);

/// Sets up the stderr sink. journal: nullopt = detect from $JOURNAL_STREAM.
void init(Level level);
void set_level(Level level);
bool enabled(Level level);

/// Never log this string: it is masked in every line. Empty strings are ignored.
void add_secret(const std::string& secret);
/// Returns text with every registered secret masked.
std::string redact(std::string text);

void write(Level level, std::string_view message);

/// A one-line status (the progress of `sync`) kept at the bottom of the terminal: each log line
/// clears it first and draws it again after itself, so the two never share a line. Draws only
/// after enable_status_line(true) (the caller decides: stderr is a TTY, or --progress).
/// set_status_line("") removes it. Thread-safe.
void enable_status_line(bool on);
void set_status_line(std::string text);

/// Writes `line` and a newline to stderr as it is (no time stamp, secrets masked), clearing the
/// status line first and drawing it again after: for one-line errors of the commands.
void print_line(std::string_view line);

template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kTrace)) write(Level::kTrace, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kError)) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lfh::log
