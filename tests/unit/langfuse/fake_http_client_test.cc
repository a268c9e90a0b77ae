#include "support/fake_http_client.h"

#include <doctest/doctest.h>

#include <stop_token>
#include <string>

namespace lfh::testing {
namespace {

HttpRequest request(const std::string& url, const std::string& user = "",
                    const std::string& password = "") {
  HttpRequest r;
  r.url = url;
  r.basic_user = user;
  r.basic_password = password;
  r.endpoint = "test";
  return r;
}

TEST_CASE("FakeHttpClient: FIFO per route, then the default, then 404") {
  FakeHttpClient http;
  http.push("/a", 200, "first");
  http.push("/a", 500, "second");
  http.set_default("/a", FakeHttpClient::response(200, "default"));
  CHECK(http.pending() == 2);
  CHECK(http.get(request("http://127.0.0.1:1/a"), {})->body == "first");
  CHECK(http.get(request("http://127.0.0.1:1/a?x=1"), {})->status == 500);
  CHECK(http.get(request("http://127.0.0.1:1/a"), {})->body == "default");
  CHECK(http.get(request("http://127.0.0.1:1/a"), {})->body == "default");
  CHECK(http.pending() == 0);
  auto missing = http.get(request("http://127.0.0.1:1/b"), {});
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(http.count("/a") == 4);
  CHECK(http.count() == 5);
}

TEST_CASE("FakeHttpClient: routes with a query substring win while they can answer") {
  FakeHttpClient http;
  http.push("/s", 200, "page two", "page=2");
  http.set_default("/s", FakeHttpClient::response(200, "any"));
  CHECK(http.get(request("http://h/s?page=1"), {})->body == "any");
  CHECK(http.get(request("http://h/s?page=2&limit=5"), {})->body == "page two");
  CHECK(http.get(request("http://h/s?page=2&limit=5"), {})->body == "any");
}

TEST_CASE("FakeHttpClient: Status answers, handlers and stop requests") {
  FakeHttpClient http;
  http.push("/s", Status::Error(ErrorKind::kRetryable, "reset"));
  http.set_handler("/s", [&](const HttpRequest& r) -> Result<HttpResponse> {
    // A handler runs outside the lock and may inspect the fake.
    return FakeHttpClient::response(200, r.url + " #" + std::to_string(http.count()));
  });
  auto failed = http.get(request("http://h/s"), {});
  CHECK(failed.status().kind() == ErrorKind::kRetryable);
  CHECK(http.get(request("http://h/s?q"), {})->body == "http://h/s?q #2");
  std::stop_source stop;
  stop.request_stop();
  CHECK(http.get(request("http://h/s"), stop.get_token()).status().kind() == ErrorKind::kCancelled);
}

TEST_CASE("FakeHttpClient: records requests without the password") {
  FakeHttpClient http;
  auto r = request("http://127.0.0.1:9/api/x?a=1", "pk-user", "sk-secret");
  r.headers.emplace_back("Accept", "application/json");
  r.max_body_bytes = 77;
  (void)http.get(r, {});
  (void)http.get(request("http://127.0.0.1:9/api/y"), {});
  auto recorded = http.requests();
  REQUIRE(recorded.size() == 2);
  CHECK(recorded[0].url == "http://127.0.0.1:9/api/x?a=1");
  CHECK(recorded[0].path == "/api/x");
  CHECK(recorded[0].query == "a=1");
  CHECK(recorded[0].basic_user == "pk-user");
  CHECK(recorded[0].has_password);
  CHECK(recorded[0].max_body_bytes == 77);
  CHECK(recorded[0].endpoint == "test");
  REQUIRE(recorded[0].headers.size() == 1);
  CHECK_FALSE(recorded[1].has_password);
}

TEST_CASE("FakeHttpClient: split_url and query_param") {
  using P = std::pair<std::string, std::string>;
  CHECK(FakeHttpClient::split_url("http://h:1/a/b?x=1#frag") == P{"/a/b", "x=1"});
  CHECK(FakeHttpClient::split_url("https://h") == P{"/", ""});
  CHECK(FakeHttpClient::split_url("http://h?x") == P{"/", "x"});
  CHECK(FakeHttpClient::split_url("/rel?q=2") == P{"/rel", "q=2"});
  CHECK(FakeHttpClient::query_param("a=1&cursor=ab%2B%2F%3D&e=", "cursor") == "ab+/=");
  CHECK(FakeHttpClient::query_param("a=1&flag&e=", "flag") == "");
  CHECK(FakeHttpClient::query_param("a=1&e=", "e") == "");
  CHECK_FALSE(FakeHttpClient::query_param("a=1", "b").has_value());
  CHECK(FakeHttpClient::query_param("n=x+y%2", "n") == "x y%2");
}

}  // namespace
}  // namespace lfh::testing
