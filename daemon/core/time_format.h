// ISO 8601 timestamps as Langfuse sends them and as the database stores them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace lfh {

/// Parses "2024-05-01T12:00:00Z", "...T12:00:00.123Z", "...T12:00:00.123456+02:00",
/// "2024-05-01 12:00:00" (taken as UTC) and a bare date "2024-05-01". nullopt on anything else,
/// including years outside 1900..2200.
std::optional<SysTime> parse_iso8601(std::string_view text);

/// Canonical form stored in the database: "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, milliseconds).
/// Text comparison of canonical strings orders them in time.
std::string format_iso8601(SysTime t);

/// Parses and re-formats to the canonical form; nullopt when unparseable.
std::optional<std::string> canonical_iso8601(std::string_view text);

}  // namespace lfh
