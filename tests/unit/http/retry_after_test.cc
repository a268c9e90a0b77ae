#include "http/retry_after.h"

#include <doctest/doctest.h>

#include "core/time_format.h"

namespace lfh {
namespace {

SysTime at(const char* iso) {
  return *parse_iso8601(iso);
}

}  // namespace

TEST_CASE("Retry-After delay-seconds") {
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK(parse_retry_after("7", now) == Millis(7000));
  CHECK(parse_retry_after("0", now) == Millis(0));
  CHECK(parse_retry_after("  120\t", now) == Millis(120'000));
  CHECK(parse_retry_after("86400", now) == Millis(86'400'000));
}

TEST_CASE("Retry-After rejects garbage, negatives and absurd values") {
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK_FALSE(parse_retry_after("", now));
  CHECK_FALSE(parse_retry_after("   ", now));
  CHECK_FALSE(parse_retry_after("-5", now));
  CHECK_FALSE(parse_retry_after("7.5", now));
  CHECK_FALSE(parse_retry_after("7s", now));
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("86401", now));
  CHECK_FALSE(parse_retry_after("99999999999999999999999999", now));
  // Dates whose nanoseconds do not fit the clock (found by fuzz_http_headers).
  CHECK_FALSE(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now));
  // Dates libcurl cannot read: an impossible day, month or hour, an unknown word.
  CHECK_FALSE(parse_retry_after("Wed, 32 May 2024 12:00:07 GMT", now));
  CHECK_FALSE(parse_retry_after("Wed, 01 Foo 2024 12:00:07 GMT", now));
  CHECK_FALSE(parse_retry_after("Wed, 01 May 2024 24:00:07 GMT", now));
  CHECK_FALSE(parse_retry_after("Xyz, 01 May 2024 12:00:07 GMT", now));
}

TEST_CASE("Retry-After dates are read by libcurl, which is lenient where it is harmless") {
  // curl_getdate reads more than RFC 9110's three forms. What it accepts still names one
  // instant, and the one-day cap still applies, so these are honoured rather than refused.
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK(parse_retry_after("wed, 01 may 2024 12:00:07 gmt", now) == Millis(7000));
  CHECK(parse_retry_after("Wed, 01 May 2024 12:00:07", now) == Millis(7000));  // no zone: GMT
  // A JavaScript Date string (what X-RateLimit-Reset carries) names the same instant.
  CHECK(parse_retry_after("Wed May 01 2024 12:00:07 GMT+0000 (Coordinated Universal Time)", now) ==
        Millis(7000));
  // An impossible 31 June is read as 1 July, more than a day ahead: refused by the cap.
  CHECK_FALSE(parse_retry_after("Wed, 31 Jun 2024 12:00:07 GMT", now));
}

TEST_CASE("Retry-After IMF-fixdate") {
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK(parse_retry_after("Wed, 01 May 2024 12:00:07 GMT", now) == Millis(7000));
  CHECK(parse_retry_after("Thu, 02 May 2024 11:00:00 GMT", now) == Millis(23 * 3600 * 1000));
  // In the past: go now.
  CHECK(parse_retry_after("Wed, 01 May 2024 11:59:00 GMT", now) == Millis(0));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == Millis(0));
  // More than a day ahead.
  CHECK_FALSE(parse_retry_after("Fri, 03 May 2024 12:00:00 GMT", now));
}

TEST_CASE("Retry-After with a sub-second now rounds the wait up") {
  const SysTime now = at("2024-05-01T12:00:00.250Z");
  CHECK(parse_retry_after("Wed, 01 May 2024 12:00:07 GMT", now) == Millis(6750));
}

TEST_CASE("Retry-After obsolete RFC 850 date") {
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK(parse_retry_after("Wednesday, 01-May-24 12:00:07 GMT", now) == Millis(7000));
  // "94" is 1994 (2094 would be more than 50 years ahead): long past.
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now) == Millis(0));
  CHECK(parse_retry_after("Wed, 01-May-24 12:00:07 GMT", now) == Millis(7000));
}

TEST_CASE("Retry-After asctime date") {
  const SysTime now = at("2024-05-01T12:00:00Z");
  CHECK(parse_retry_after("Wed May  1 12:00:07 2024", now) == Millis(7000));
  CHECK(parse_retry_after("Wed May 01 12:00:07 2024", now) == Millis(7000));
  const SysTime later = at("2024-05-16T12:00:00Z");
  CHECK(parse_retry_after("Thu May 16 12:00:30 2024", later) == Millis(30'000));
  CHECK(parse_retry_after("Wed May 1 12:00:07 2024", now) == Millis(7000));
}

}  // namespace lfh
