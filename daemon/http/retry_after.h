// Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date.
#pragma once

#include <optional>
#include <string_view>

#include "core/clock.h"

namespace lfh {

/// The wait the server asked for, measured from `now`: "7" -> 7 s; an HTTP-date (IMF-fixdate,
/// the obsolete RFC 850 and asctime forms, and whatever else libcurl's curl_getdate reads) ->
/// the time until then, 0 if already past. nullopt for garbage, negative numbers or absurd
/// values (more than a day): the caller falls back to backoff.
std::optional<Millis> parse_retry_after(std::string_view value, SysTime now);

}  // namespace lfh
