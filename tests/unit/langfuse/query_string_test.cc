#include "langfuse/query_string.h"

#include <doctest/doctest.h>

namespace lfh {
namespace {

TEST_CASE("percent_encode keeps only unreserved characters") {
  CHECK(percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(percent_encode("a+b/c=") == "a%2Bb%2Fc%3D");
  CHECK(percent_encode("x y&z?#%") == "x%20y%26z%3F%23%25");
  CHECK(percent_encode("2025-03-01T00:00:00.000Z") == "2025-03-01T00%3A00%3A00.000Z");
  CHECK(percent_encode("\xC3\xA4\xFF") == "%C3%A4%FF");
  CHECK(percent_encode(std::string_view("a\0b", 3)) == "a%00b");
  CHECK(percent_encode("") == "");
}

TEST_CASE("QueryString joins pairs in order and encodes list elements") {
  QueryString q;
  CHECK(q.empty());
  q.add("limit", 10).add("cursor", "ab+/=").add_list("name", {"a,b", "c d"}).add_list("id", {});
  CHECK(q.str() == "limit=10&cursor=ab%2B%2F%3D&name=a%2Cb,c%20d");
  CHECK_FALSE(q.empty());
}

}  // namespace
}  // namespace lfh
