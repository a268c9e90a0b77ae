#include "http/curl_http_client.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "core/version.h"
#include "support/loopback_server.h"

namespace lfh {
namespace {

using test::LoopbackServer;
using test::RecordedRequest;
using test::Responder;

constexpr std::size_t kMiB = 1024 * 1024;

CurlHttpClientOptions test_options() {
  CurlHttpClientOptions o;
  o.connect_timeout = std::chrono::seconds(5);
  o.total_timeout = std::chrono::seconds(30);
  o.low_speed_limit_bytes_per_s = 1;
  o.low_speed_time = std::chrono::seconds(30);
  o.max_body_bytes = kMiB;
  return o;
}

HttpRequest get_request(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  r.endpoint = "test";
  return r;
}

HttpRequest authenticated(std::string url) {
  HttpRequest r = get_request(std::move(url));
  r.basic_user = "pk-lf-1";
  r.basic_password = "sk-lf-secret";
  return r;
}

const char* kExpectedAuthorization = "Basic cGstbGYtMTpzay1sZi1zZWNyZXQ=";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("curl client returns status, lower-cased headers and body, and sends auth and UA") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) {
    out.reply(200, {{"X-Custom-Thing", "  Value  "}, {"Content-Type", "application/json"}},
              R"({"ok":true})");
  });
  CurlHttpClient client(test_options());
  HttpRequest request = authenticated(server.url("/api/public/health?x=1"));
  request.headers = {{"Accept", "application/json"}};
  Result<HttpResponse> response = client.get(request, std::stop_token());
  REQUIRE(response.ok());
  CHECK(response->status == 200);
  CHECK(response->body == R"({"ok":true})");
  REQUIRE(response->header("x-custom-thing") != nullptr);
  CHECK(*response->header("x-custom-thing") == "Value");
  CHECK(*response->header("content-type") == "application/json");
  CHECK(response->header("X-Custom-Thing") == nullptr);
  CHECK(response->elapsed_s > 0);

  std::vector<RecordedRequest> seen = server.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "GET");
  CHECK(seen[0].target == "/api/public/health?x=1");
  REQUIRE(seen[0].header("authorization") != nullptr);
  CHECK(*seen[0].header("authorization") == kExpectedAuthorization);
  CHECK(*seen[0].header("user-agent") == std::string("lfharvest/") + kVersion);
  CHECK(*seen[0].header("accept") == "application/json");
}

TEST_CASE("curl client returns error statuses as responses") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) {
    out.reply(429, {{"Retry-After", "7"}}, R"({"code":"rate_limited"})");
  });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response = client.get(get_request(server.url("/x")), std::stop_token());
  REQUIRE(response.ok());
  CHECK(response->status == 429);
  CHECK(*response->header("retry-after") == "7");
}

TEST_CASE("a pooled handle does not carry credentials into the next call") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.reply(200, {}, "ok"); });
  CurlHttpClient client(test_options());
  REQUIRE(client.get(authenticated(server.url("/first")), std::stop_token()).ok());
  REQUIRE(client.get(get_request(server.url("/second")), std::stop_token()).ok());
  std::vector<RecordedRequest> seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].header("authorization") != nullptr);
  CHECK(seen[1].header("authorization") == nullptr);
}

TEST_CASE("a Content-Length over the cap is refused before the body is read") {
  const std::string big(8 * kMiB, 'b');
  LoopbackServer server([&](const RecordedRequest&, Responder& out) { out.reply(200, {}, big); });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response = client.get(get_request(server.url("/big")), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kTooLarge);
  CHECK(response.status().detail() == static_cast<long long>(8 * kMiB));
  CHECK(response.status().message().find("1048576") != std::string::npos);
}

TEST_CASE("a chunked body is aborted at the cap, long before its end") {
  constexpr std::size_t kTotal = 256 * kMiB;
  LoopbackServer server(
      [](const RecordedRequest&, Responder& out) { out.reply_chunked(200, kTotal, 64 * 1024); });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response =
      client.get(get_request(server.url("/chunked")), std::stop_token());
  REQUIRE(response.status().kind() == ErrorKind::kTooLarge);
  CHECK(response.status().detail() > static_cast<long long>(kMiB));
  CHECK(response.status().detail() < static_cast<long long>(2 * kMiB));
  REQUIRE(server.wait_idle(std::chrono::seconds(10)));
  CHECK(server.bytes_sent() < 64 * kMiB);
}

TEST_CASE("the request's cap overrides the client default") {
  const std::string body(2 * kMiB, 'b');
  LoopbackServer server([&](const RecordedRequest&, Responder& out) { out.reply(200, {}, body); });
  CurlHttpClient client(test_options());  // default cap 1 MiB
  HttpRequest request = get_request(server.url("/two-mib"));
  CHECK(client.get(request, std::stop_token()).status().kind() == ErrorKind::kTooLarge);
  request.max_body_bytes = 4 * kMiB;
  Result<HttpResponse> response = client.get(request, std::stop_token());
  REQUIRE(response.ok());
  CHECK(response->body.size() == 2 * kMiB);
  request.max_body_bytes = 2 * kMiB;  // exactly at the cap is allowed
  CHECK(client.get(request, std::stop_token()).ok());
}

TEST_CASE("a truncated body is retryable") {
  LoopbackServer server(
      [](const RecordedRequest&, Responder& out) { out.reply_truncated(200, 1000, "0123456789"); });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response = client.get(get_request(server.url("/t")), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kRetryable);
  CHECK(response.status().message().find("truncated") != std::string::npos);
}

TEST_CASE("a connection reset and a refused connection are retryable") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.reset(); });
  CurlHttpClient client(test_options());
  CHECK(client.get(get_request(server.url("/r")), std::stop_token()).status().kind() ==
        ErrorKind::kRetryable);

  std::string closed_url;
  {
    LoopbackServer gone([](const RecordedRequest&, Responder& out) { out.reply(200, {}, ""); });
    closed_url = gone.url("/nobody-home");
  }
  Result<HttpResponse> refused = client.get(get_request(closed_url), std::stop_token());
  CHECK(refused.status().kind() == ErrorKind::kRetryable);
  CHECK(refused.status().message().find("connect") != std::string::npos);
}

TEST_CASE("a stalled body is aborted by the low-speed limit") {
  // The one real-time wait of this suite: libcurl's low-speed check runs on the real clock.
  LoopbackServer server([](const RecordedRequest&, Responder& out) {
    out.trickle(200, std::string(1000, 's'), 1, std::chrono::milliseconds(200));
  });
  CurlHttpClientOptions options = test_options();
  options.low_speed_limit_bytes_per_s = 100;
  options.low_speed_time = std::chrono::seconds(1);
  CurlHttpClient client(options);
  const auto start = std::chrono::steady_clock::now();
  Result<HttpResponse> response = client.get(get_request(server.url("/slow")), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kRetryable);
  CHECK(response.status().message().find("too slow") != std::string::npos);
  CHECK(seconds_since(start) < 10);
}

TEST_CASE("a stop request aborts a transfer that would never end") {
  std::promise<void> arrived;
  std::atomic<bool> signalled{false};
  LoopbackServer server([&](const RecordedRequest&, Responder& out) {
    if (!signalled.exchange(true)) arrived.set_value();
    out.hang();
  });
  CurlHttpClient client(test_options());
  std::stop_source stop;
  auto result = std::async(std::launch::async, [&] {
    return client.get(get_request(server.url("/hang")), stop.get_token());
  });
  arrived.get_future().wait();
  const auto stop_at = std::chrono::steady_clock::now();
  stop.request_stop();
  Result<HttpResponse> response = result.get();
  CHECK(seconds_since(stop_at) < 1.0);
  CHECK(response.status().kind() == ErrorKind::kCancelled);
}

TEST_CASE("a stop requested before the call sends nothing") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.reply(200, {}, ""); });
  CurlHttpClient client(test_options());
  std::stop_source stop;
  stop.request_stop();
  CHECK(client.get(get_request(server.url("/x")), stop.get_token()).status().kind() ==
        ErrorKind::kCancelled);
  CHECK(server.request_count() == 0);
}

TEST_CASE("a redirect to another origin carries no credentials") {
  LoopbackServer other(
      [](const RecordedRequest&, Responder& out) { out.reply(200, {}, "landed"); });
  LoopbackServer origin(
      [&](const RecordedRequest&, Responder& out) { out.redirect(302, other.url("/landed")); });
  CurlHttpClient client(test_options());
  HttpRequest request = authenticated(origin.url("/start"));
  request.headers = {{"Accept", "application/json"}, {"Cookie", "session=abc"}};
  Result<HttpResponse> response = client.get(request, std::stop_token());
  REQUIRE(response.ok());
  CHECK(response->status == 200);
  CHECK(response->body == "landed");

  std::vector<RecordedRequest> at_origin = origin.requests();
  REQUIRE(at_origin.size() == 1);
  CHECK(at_origin[0].header("authorization") != nullptr);
  std::vector<RecordedRequest> at_other = other.requests();
  REQUIRE(at_other.size() == 1);
  CHECK(at_other[0].target == "/landed");
  CHECK(at_other[0].header("authorization") == nullptr);
  CHECK(at_other[0].header("cookie") == nullptr);
  CHECK(at_other[0].header("accept") != nullptr);
}

TEST_CASE("a same-origin redirect keeps credentials; leaving the origin drops them for good") {
  std::unique_ptr<LoopbackServer> origin;
  LoopbackServer other(
      [&](const RecordedRequest&, Responder& out) { out.redirect(301, origin->url("/final")); });
  origin = std::make_unique<LoopbackServer>([&](const RecordedRequest& request, Responder& out) {
    if (request.target == "/start") return out.redirect(307, "/second");
    if (request.target == "/second") return out.redirect(308, other.url("/away"));
    out.reply(200, {}, "final");
  });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response =
      client.get(authenticated(origin->url("/start")), std::stop_token());
  REQUIRE(response.ok());
  CHECK(response->body == "final");
  std::vector<RecordedRequest> seen = origin->requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].header("authorization") != nullptr);
  CHECK(seen[1].target == "/second");
  CHECK(seen[1].header("authorization") != nullptr);
  CHECK(seen[2].target == "/final");
  CHECK(seen[2].header("authorization") == nullptr);  // came back via another origin
  REQUIRE(other.request_count() == 1);
  CHECK(other.requests()[0].header("authorization") == nullptr);
  origin.reset();
}

TEST_CASE("redirect loops stop after the configured number of hops") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.redirect(302, "/loop"); });
  CurlHttpClient client(test_options());
  Result<HttpResponse> response = client.get(get_request(server.url("/loop")), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kConfig);
  CHECK(response.status().message().find("redirects") != std::string::npos);
  CHECK(server.request_count() == 6);  // the request and 5 redirects
}

TEST_CASE("a redirect to a non-http scheme is refused") {
  LoopbackServer server(
      [](const RecordedRequest&, Responder& out) { out.redirect(302, "ftp://127.0.0.1/file"); });
  CurlHttpClient client(test_options());
  CHECK(client.get(get_request(server.url("/x")), std::stop_token()).status().kind() ==
        ErrorKind::kConfig);
}

TEST_CASE("URLs with credentials or other schemes are refused before anything is sent") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.reply(200, {}, ""); });
  CurlHttpClient client(test_options());
  std::string with_userinfo =
      "http://pk-lf-1:sk-lf-in-url@127.0.0.1:" + std::to_string(server.port()) + "/";
  Result<HttpResponse> response = client.get(get_request(with_userinfo), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kConfig);
  CHECK(response.status().message().find("sk-lf-in-url") == std::string::npos);
  CHECK(client.get(get_request("file:///etc/hostname"), std::stop_token()).status().kind() ==
        ErrorKind::kConfig);
  CHECK(server.request_count() == 0);
}

TEST_CASE("an unusable CA file is a configuration error") {
  LoopbackServer server([](const RecordedRequest&, Responder& out) { out.reply(200, {}, ""); });
  CurlHttpClientOptions options = test_options();
  options.ca_file = "/nonexistent/lfharvest-test-ca.pem";
  CurlHttpClient client(options);
  std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  Result<HttpResponse> response = client.get(get_request(url), std::stop_token());
  CHECK(response.status().kind() == ErrorKind::kConfig);
  CHECK(response.status().message().find("CA") != std::string::npos);
}

TEST_CASE("concurrent calls on one client never mix up responses") {
  LoopbackServer server([](const RecordedRequest& request, Responder& out) {
    out.reply(200, {{"X-Echo", request.target}}, request.target);
  });
  CurlHttpClient client(test_options());
  std::atomic<int> correct{0};
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < 4; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < 10; ++i) {
          std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
          Result<HttpResponse> r = client.get(get_request(server.url(path)), std::stop_token());
          if (r.ok() && r->body == path && r->headers.count("x-echo") == 1 &&
              r->headers.at("x-echo") == path) {
            ++correct;
          }
        }
      });
    }
  }
  CHECK(correct == 40);
}

}  // namespace lfh
