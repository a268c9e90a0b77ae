#include "http/retry_after.h"

#include <array>
#include <chrono>
#include <cstdint>

namespace lfh {
namespace {

using std::chrono::days;
using std::chrono::sys_days;

// A server asking for more than a day is misconfigured or hostile; the caller's backoff is saner.
constexpr std::chrono::seconds kMaxDelay = std::chrono::hours(24);

constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Sequential reader over the date text; every step fails cleanly on a mismatch.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool done() const { return text_.empty(); }

  bool literal(std::string_view expected) {
    if (text_.substr(0, expected.size()) != expected) return false;
    text_.remove_prefix(expected.size());
    return true;
  }

  // Exactly `count` digits.
  bool digits(int count, int& out) {
    if (text_.size() < static_cast<std::size_t>(count)) return false;
    int value = 0;
    for (int i = 0; i < count; ++i) {
      if (!is_digit(text_[static_cast<std::size_t>(i)])) return false;
      value = value * 10 + (text_[static_cast<std::size_t>(i)] - '0');
    }
    text_.remove_prefix(static_cast<std::size_t>(count));
    out = value;
    return true;
  }

  template <std::size_t N>
  bool one_of(const std::array<std::string_view, N>& names, int& index) {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

  // "HH:MM:SS"
  bool time_of_day(int& hour, int& minute, int& second) {
    return digits(2, hour) && literal(":") && digits(2, minute) && literal(":") &&
           digits(2, second);
  }

 private:
  std::string_view text_;
};

struct DateParts {
  int year = 0;
  int month = 0;  // 1..12
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<DateParts> parse_imf_fixdate(std::string_view text) {
  Cursor in(text);
  DateParts p;
  int weekday = 0;
  int month_index = 0;
  if (!(in.one_of(kShortDays, weekday) && in.literal(", ") && in.digits(2, p.day) &&
        in.literal(" ") && in.one_of(kMonths, month_index) && in.literal(" ") &&
        in.digits(4, p.year) && in.literal(" ") && in.time_of_day(p.hour, p.minute, p.second) &&
        in.literal(" GMT") && in.done())) {
    return std::nullopt;
  }
  p.month = month_index + 1;
  return p;
}

// Obsolete RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". The two-digit year is resolved as RFC 9110
// section 5.6.7 says: a year more than 50 years in the future means the previous century.
std::optional<DateParts> parse_rfc850(std::string_view text, int current_year) {
  Cursor in(text);
  DateParts p;
  int weekday = 0;
  int month_index = 0;
  int two_digit_year = 0;
  if (!(in.one_of(kLongDays, weekday) && in.literal(", ") && in.digits(2, p.day) &&
        in.literal("-") && in.one_of(kMonths, month_index) && in.literal("-") &&
        in.digits(2, two_digit_year) && in.literal(" ") &&
        in.time_of_day(p.hour, p.minute, p.second) && in.literal(" GMT") && in.done())) {
    return std::nullopt;
  }
  p.month = month_index + 1;
  int century = current_year / 100 * 100;
  p.year = century + two_digit_year;
  if (p.year > current_year + 50) p.year -= 100;
  return p;
}

// asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space) or "Sun Nov 16 08:49:37 1994".
std::optional<DateParts> parse_asctime(std::string_view text) {
  Cursor in(text);
  DateParts p;
  int weekday = 0;
  int month_index = 0;
  if (!(in.one_of(kShortDays, weekday) && in.literal(" ") && in.one_of(kMonths, month_index) &&
        in.literal(" "))) {
    return std::nullopt;
  }
  if (in.literal(" ")) {
    if (!in.digits(1, p.day)) return std::nullopt;
  } else if (!in.digits(2, p.day)) {
    return std::nullopt;
  }
  if (!(in.literal(" ") && in.time_of_day(p.hour, p.minute, p.second) && in.literal(" ") &&
        in.digits(4, p.year) && in.done())) {
    return std::nullopt;
  }
  p.month = month_index + 1;
  return p;
}

std::optional<SysTime> to_time(const DateParts& p) {
  std::chrono::year_month_day date{std::chrono::year(p.year),
                                   std::chrono::month(static_cast<unsigned>(p.month)),
                                   std::chrono::day(static_cast<unsigned>(p.day))};
  // 60 seconds admits a leap second, which the grammar allows.
  if (!date.ok() || p.hour > 23 || p.minute > 59 || p.second > 60) return std::nullopt;
  // The clock counts nanoseconds in 64 bits (about 1678..2262): a date outside cannot be
  // represented, and a wait that long is garbage anyway.
  if (p.year < 1900 || p.year > 2200) return std::nullopt;
  auto time = sys_days(date) + std::chrono::hours(p.hour) + std::chrono::minutes(p.minute) +
              std::chrono::seconds(p.second);
  return std::chrono::time_point_cast<SysTime::duration>(time);
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

  int current_year =
      static_cast<int>(std::chrono::year_month_day(std::chrono::floor<days>(now)).year());
  std::optional<DateParts> parts = parse_imf_fixdate(text);
  if (!parts) parts = parse_rfc850(text, current_year);
  if (!parts) parts = parse_asctime(text);
  if (!parts) return std::nullopt;
  std::optional<SysTime> when = to_time(*parts);
  if (!when) return std::nullopt;

  if (*when <= now) return Millis(0);
  auto delay = std::chrono::ceil<Millis>(*when - now);
  if (delay > kMaxDelay) return std::nullopt;
  return delay;
}

}  // namespace lfh
