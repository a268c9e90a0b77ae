#include "core/time_format.h"

#include <cctype>
#include <chrono>
#include <cstdio>

namespace lfh {
namespace {

bool read_int(std::string_view s, size_t& pos, size_t digits, int& out) {
  if (pos + digits > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < digits; ++i) {
    char c = s[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  pos += digits;
  out = v;
  return true;
}

bool expect(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

std::optional<SysTime> parse_iso8601(std::string_view s) {
  using namespace std::chrono;
  size_t pos = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!read_int(s, pos, 4, y) || !expect(s, pos, '-') || !read_int(s, pos, 2, mo) ||
      !expect(s, pos, '-') || !read_int(s, pos, 2, d)) {
    return std::nullopt;
  }
  // The clock counts nanoseconds in 64 bits (about 1678..2262): keep well inside.
  if (y < 1900 || y > 2200) return std::nullopt;
  year_month_day ymd{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  long long frac_ns = 0;
  int offset_min = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return std::nullopt;
    ++pos;
    if (!read_int(s, pos, 2, h) || !expect(s, pos, ':') || !read_int(s, pos, 2, mi)) {
      return std::nullopt;
    }
    if (expect(s, pos, ':') && !read_int(s, pos, 2, sec)) return std::nullopt;
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (expect(s, pos, '.') || expect(s, pos, ',')) {
      long long scale = 100'000'000;
      size_t start = pos;
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
        frac_ns += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return std::nullopt;
    }
    if (pos < s.size()) {
      char c = s[pos];
      if (c == 'Z' || c == 'z') {
        ++pos;
      } else if (c == '+' || c == '-') {
        ++pos;
        int oh = 0, om = 0;
        if (!read_int(s, pos, 2, oh)) return std::nullopt;
        expect(s, pos, ':');
        if (pos < s.size() && !read_int(s, pos, 2, om)) return std::nullopt;
        offset_min = (c == '+' ? 1 : -1) * (oh * 60 + om);
      } else {
        return std::nullopt;
      }
    }
    if (pos != s.size()) return std::nullopt;
  }
  auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(sec) - minutes(offset_min);
  return time_point_cast<system_clock::duration>(t) +
         duration_cast<system_clock::duration>(nanoseconds(frac_ns));
}

std::string format_iso8601(SysTime t) {
  using namespace std::chrono;
  auto ms = time_point_cast<milliseconds>(t);
  auto days = floor<std::chrono::days>(ms);
  year_month_day ymd(days);
  hh_mm_ss<milliseconds> hms(ms - days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

std::optional<std::string> canonical_iso8601(std::string_view text) {
  auto t = parse_iso8601(text);
  if (!t) return std::nullopt;
  return format_iso8601(*t);
}

}  // namespace lfh
