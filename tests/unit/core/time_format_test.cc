#include "core/time_format.h"

#include <doctest/doctest.h>

namespace lfh {

TEST_CASE("ISO 8601 timestamps parse to one canonical form") {
  CHECK(canonical_iso8601("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00.000Z");
  CHECK(canonical_iso8601("2024-05-01T12:00:00.123456Z") == "2024-05-01T12:00:00.123Z");
  CHECK(canonical_iso8601("2024-05-01T14:00:00.5+02:00") == "2024-05-01T12:00:00.500Z");
  CHECK(canonical_iso8601("2024-05-01 12:00:00") == "2024-05-01T12:00:00.000Z");
  CHECK(canonical_iso8601("2024-05-01") == "2024-05-01T00:00:00.000Z");
  CHECK(canonical_iso8601("2024-02-30T00:00:00Z") == std::nullopt);
  CHECK(canonical_iso8601("yesterday") == std::nullopt);
  CHECK(canonical_iso8601("2024-05-01T12:00:00Zjunk") == std::nullopt);
  CHECK(canonical_iso8601("") == std::nullopt);
}

TEST_CASE("canonical timestamps sort in time order as text") {
  auto a = *canonical_iso8601("2024-05-01T09:59:59.999Z");
  auto b = *canonical_iso8601("2024-05-01T10:00:00Z");
  CHECK(a < b);
}

}  // namespace lfh
TEST_CASE("years the clock cannot hold are refused, not overflowed") {
  CHECK(lfh::canonical_iso8601("9108-03-01T00:00:00Z") == std::nullopt);
  CHECK(lfh::canonical_iso8601("1200-03-01T00:00:00Z") == std::nullopt);
  CHECK(lfh::canonical_iso8601("2200-01-01T00:00:00Z").has_value());
}
