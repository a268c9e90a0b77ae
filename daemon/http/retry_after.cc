#include "http/retry_after.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace lfh {
namespace {

// A server asking for more than a day is misconfigured or hostile; the caller's backoff is saner.
constexpr std::chrono::seconds kMaxDelay = std::chrono::hours(24);

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::optional<Millis> parse_delay_seconds(std::string_view text) {
  std::int64_t seconds = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    seconds = seconds * 10 + (c - '0');
    if (seconds > kMaxDelay.count()) return std::nullopt;  // also stops overflow early
  }
  return Millis(std::chrono::seconds(seconds));
}

}  // namespace

std::optional<Millis> parse_retry_after(std::string_view value, SysTime now) {
  std::string_view text = trim(value);
  if (text.empty()) return std::nullopt;
  if (is_digit(text.front())) return parse_delay_seconds(text);
  // An HTTP-date: libcurl's parser reads the IMF-fixdate and the obsolete RFC 850 and asctime
  // forms (the ones RFC 9110 asks a recipient to accept), times without a zone as GMT, and
  // refuses words it does not know. curl_getdate needs a NUL-terminated string.
  const std::string date(text);
  const time_t when_s = curl_getdate(date.c_str(), nullptr);
  if (when_s == -1) return std::nullopt;
  // Compared in whole seconds first: a date far ahead or behind (year 9999, year 1) does not
  // fit the clock's nanoseconds, and anything past the longest honoured delay is refused anyway.
  const time_t now_s = std::chrono::system_clock::to_time_t(now);
  if (when_s <= now_s) return Millis(0);
  if (when_s - now_s > kMaxDelay.count() + 1) return std::nullopt;
  const SysTime when = std::chrono::system_clock::from_time_t(when_s);
  if (when <= now) return Millis(0);
  auto delay = std::chrono::ceil<Millis>(when - now);
  if (delay > kMaxDelay) return std::nullopt;
  return delay;
}

}  // namespace lfh
