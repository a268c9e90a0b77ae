#include "langfuse/langfuse_client.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/time_format.h"
#include "support/fake_http_client.h"

namespace lfh {
namespace {

using testing::FakeHttpClient;

constexpr const char* kPublicKey = "pk-lf-0000-public";
constexpr const char* kSecretKey = "sk-lf-canary-7c1e5b";
constexpr const char* kScoresV3 = "/api/public/v3/scores";
constexpr const char* kScoresLegacy = "/api/public/scores";
constexpr const char* kObservationsV2 = "/api/public/v2/observations";
constexpr const char* kObservationsLegacy = "/api/public/observations";

const std::string kEmptyV3 = R"({"data":[],"meta":{"limit":100}})";
const std::string kEmptyLegacy =
    R"({"data":[],"meta":{"page":1,"limit":100,"totalItems":0,"totalPages":0}})";

LangfuseClientOptions make_options(ApiGeneration generation = ApiGeneration::kUnknown) {
  LangfuseClientOptions options;
  options.base_url = "http://127.0.0.1:3000/";
  options.public_key = kPublicKey;
  options.secret_key = kSecretKey;
  options.max_response_bytes = 1'234'567;
  options.generation = generation;
  return options;
}

std::string legacy_score(const std::string& id, const std::string& source, const std::string& name,
                         const std::string& environment) {
  std::string env = environment.empty() ? "" : R"(,"environment":")" + environment + "\"";
  return R"({"id":")" + id + R"(","traceId":"t","name":")" + name + R"(","source":")" + source +
         R"(","timestamp":"2024-01-01T00:00:00Z","dataType":"NUMERIC","value":1)" + env + "}";
}

struct Fixture {
  FakeHttpClient http;
  FakeClock clock;
};

TEST_CASE_FIXTURE(Fixture, "health is sent without credentials and sets the generation") {
  http.push("/api/public/health", 200, R"({"status":"OK","version":"4.16.0"})");
  LangfuseClient client(http, clock, make_options());
  CHECK(client.generation() == ApiGeneration::kUnknown);
  auto info = client.health({});
  REQUIRE(info.ok());
  CHECK(info->version == "4.16.0");
  CHECK(client.generation() == ApiGeneration::kCurrent);
  auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].url == "http://127.0.0.1:3000/api/public/health");
  CHECK(requests[0].basic_user.empty());
  CHECK_FALSE(requests[0].has_password);
  CHECK(requests[0].endpoint == "health");
  CHECK(requests[0].max_body_bytes == 1'234'567);
}

TEST_CASE_FIXTURE(Fixture, "health of a v3 server selects the legacy API") {
  http.push("/api/public/health", 200, R"({"status":"OK","version":"3.99.0"})");
  http.push(kScoresLegacy, 200, kEmptyLegacy);
  LangfuseClient client(http, clock, make_options());
  REQUIRE(client.health({}).ok());
  CHECK(client.generation() == ApiGeneration::kLegacy);
  REQUIRE(client.scores(ScoreQuery{}, {}).ok());
  CHECK(http.count(kScoresLegacy) == 1);
  CHECK(http.count(kScoresV3) == 0);
}

TEST_CASE_FIXTURE(Fixture, "project uses Basic auth and keeps the keys out of the URL") {
  http.push("/api/public/projects", 200,
            R"({"data":[{"id":"p-1","name":"Bot","organization":{"id":"o","name":"O"},)"
            R"("metadata":{}}]})");
  LangfuseClient client(http, clock, make_options());
  auto project = client.project({});
  REQUIRE(project.ok());
  CHECK(project->id == "p-1");
  auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].url == "http://127.0.0.1:3000/api/public/projects");
  CHECK(requests[0].basic_user == kPublicKey);
  CHECK(requests[0].has_password);
  CHECK(requests[0].endpoint == "projects");
}

TEST_CASE_FIXTURE(Fixture, "v3 scores: exact query, only spec parameters, encoded cursor") {
  http.push(kScoresV3, 200, kEmptyV3);
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ScoreQuery query;
  query.from_timestamp = "2025-03-01T00:00:00.000Z";
  query.to_timestamp = "2025-03-02T00:00:00.000Z";
  query.sources = {"ANNOTATION", "API"};
  query.names = {"helpfulness", "tone & style"};
  query.environments = {"production"};
  query.ids = {"a", "b/c"};
  query.cursor = "eyJ0Ijox+/fQ==";
  query.limit = 100;
  REQUIRE(client.scores(query, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].path == kScoresV3);
  CHECK(requests[0].query ==
        "limit=100&fields=details,subject,annotation&cursor=eyJ0Ijox%2B%2FfQ%3D%3D"
        "&fromTimestamp=2025-03-01T00%3A00%3A00.000Z&toTimestamp=2025-03-02T00%3A00%3A00.000Z"
        "&source=ANNOTATION,API&name=helpfulness,tone%20%26%20style&environment=production"
        "&id=a,b%2Fc");
  CHECK(FakeHttpClient::query_param(requests[0].query, "cursor") == "eyJ0Ijox+/fQ==");
  CHECK(requests[0].basic_user == kPublicKey);
  CHECK(requests[0].has_password);
  CHECK(requests[0].endpoint == "scores");
}

TEST_CASE_FIXTURE(Fixture, "v3 scores: never a parameter outside the spec, limit clamped") {
  const std::set<std::string> allowed = {
      "limit",         "cursor",      "fields",   "id",        "name",          "source",
      "dataType",      "environment", "configId", "queueId",   "authorUserId",  "value",
      "valueMin",      "valueMax",    "traceId",  "sessionId", "observationId", "experimentId",
      "fromTimestamp", "toTimestamp"};
  http.set_default(kScoresV3, FakeHttpClient::response(200, kEmptyV3));
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ScoreQuery minimal;
  minimal.limit = 500;
  REQUIRE(client.scores(minimal, {}).ok());
  ScoreQuery full;
  full.from_timestamp = "2025-01-01T00:00:00.000Z";
  full.sources = {"ANNOTATION"};
  full.cursor = "c";
  full.limit = 0;
  REQUIRE(client.scores(full, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].query == "limit=100&fields=details,subject,annotation");
  CHECK(requests[1].query ==
        "limit=1&fields=details,subject,annotation&cursor=c"
        "&fromTimestamp=2025-01-01T00%3A00%3A00.000Z&source=ANNOTATION");
  for (const auto& request : requests) {
    std::size_t start = 0;
    while (start < request.query.size()) {
      auto end = request.query.find('&', start);
      if (end == std::string::npos) end = request.query.size();
      std::string name = request.query.substr(start, request.query.find('=', start) - start);
      CAPTURE(name);
      CHECK(allowed.count(name) == 1);
      CHECK(name != "page");
      start = end + 1;
    }
  }
}

TEST_CASE_FIXTURE(Fixture, "legacy scores: page from the cursor, single filters, scoreIds") {
  http.push(kScoresLegacy, 200, kEmptyLegacy);
  LangfuseClient client(http, clock, make_options(ApiGeneration::kLegacy));
  ScoreQuery query;
  query.from_timestamp = "2025-03-01T00:00:00.000Z";
  query.sources = {"annotation"};
  query.names = {"helpfulness"};
  query.environments = {"production", "staging"};
  query.ids = {"a", "b"};
  query.cursor = "3";
  query.limit = 250;
  REQUIRE(client.scores(query, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].path == kScoresLegacy);
  CHECK(requests[0].query ==
        "page=3&limit=100&fromTimestamp=2025-03-01T00%3A00%3A00.000Z"
        "&source=ANNOTATION&name=helpfulness&environment=production&environment=staging"
        "&scoreIds=a,b");
}

TEST_CASE_FIXTURE(Fixture, "legacy scores: several sources or names are filtered here") {
  const std::string body = R"({"data":[)" + legacy_score("1", "ANNOTATION", "good", "production") +
                           "," + legacy_score("2", "EVAL", "good", "production") + "," +
                           legacy_score("3", "API", "good", "production") + "," +
                           legacy_score("4", "API", "other", "production") + "," +
                           legacy_score("5", "ANNOTATION", "bad", "") + "," +
                           legacy_score("6", "ANNOTATION", "bad", "staging") +
                           R"(],"meta":{"page":1,"limit":6,"totalItems":12,"totalPages":2}})";
  http.push(kScoresLegacy, 200, body);
  LangfuseClient client(http, clock, make_options(ApiGeneration::kLegacy));
  ScoreQuery query;
  query.sources = {"ANNOTATION", "api"};
  query.names = {"good", "bad"};
  query.environments = {"production", "default"};
  auto page = client.scores(query, {});
  REQUIRE(page.ok());
  std::vector<std::string> ids;
  for (const auto& s : page->scores) ids.push_back(s.id);
  CHECK(ids == std::vector<std::string>{"1", "3", "5"});
  CHECK(page->next_cursor == "2");  // paging is the server's, whatever was filtered
  CHECK(http.requests()[0].query == "page=1&limit=100&environment=production&environment=default");
}

TEST_CASE_FIXTURE(Fixture, "observations: exact queries for both generations") {
  http.push(kObservationsV2, 200, R"({"data":[],"meta":{}})");
  http.push(kObservationsLegacy, 200, kEmptyLegacy);
  LangfuseClient current(http, clock, make_options(ApiGeneration::kCurrent));
  LangfuseClient legacy(http, clock, make_options(ApiGeneration::kLegacy));
  ObservationQuery query;
  query.trace_id = "trace 1/ä";
  query.cursor = "b2Jz+/==";
  query.limit = 5000;
  REQUIRE(current.observations(query, {}).ok());
  query.cursor = "2";
  REQUIRE(legacy.observations(query, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].path == kObservationsV2);
  CHECK(requests[0].query ==
        "traceId=trace%201%2F%C3%A4&limit=1000&fields=core,basic,time,io,model,usage,metadata"
        "&cursor=b2Jz%2B%2F%3D%3D");
  CHECK(requests[0].endpoint == "observations");
  CHECK(requests[1].path == kObservationsLegacy);
  CHECK(requests[1].query == "traceId=trace%201%2F%C3%A4&page=2&limit=100");
}

TEST_CASE_FIXTURE(Fixture, "requests that would be unsafe are refused before sending") {
  LangfuseClient client(http, clock, make_options());
  ObservationQuery no_trace;
  CHECK(client.observations(no_trace, {}).status().kind() == ErrorKind::kPermanent);
  ScoreQuery too_many;
  too_many.ids.assign(101, "x");
  CHECK(client.scores(too_many, {}).status().kind() == ErrorKind::kPermanent);
  CHECK(http.count() == 0);
}

TEST_CASE_FIXTURE(Fixture, "HTTP statuses map to the documented kinds") {
  struct Case {
    long status;
    ErrorKind kind;
  };
  const Case cases[] = {
      {400, ErrorKind::kPermanent}, {401, ErrorKind::kAuth},      {403, ErrorKind::kAuth},
      {404, ErrorKind::kNotFound},  {405, ErrorKind::kPermanent}, {408, ErrorKind::kRetryable},
      {413, ErrorKind::kTooLarge},  {422, ErrorKind::kTooLarge},  {429, ErrorKind::kRateLimited},
      {501, ErrorKind::kNotFound},  {414, ErrorKind::kPermanent}, {431, ErrorKind::kPermanent},
      {500, ErrorKind::kRetryable}, {502, ErrorKind::kRetryable}, {503, ErrorKind::kRetryable},
      {524, ErrorKind::kRetryable}, {302, ErrorKind::kPermanent}};
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  for (const auto& c : cases) {
    CAPTURE(c.status);
    http.push(kScoresV3, c.status, R"({"message":"nope","error":"Err"})");
    auto page = client.scores(ScoreQuery{}, {});
    REQUIRE_FALSE(page.ok());
    CHECK(page.status().kind() == c.kind);
    CHECK(page.status().detail() == c.status);
    CHECK(page.status().message() ==
          "GET /api/public/v3/scores: HTTP " + std::to_string(c.status) + ": nope");
    CHECK_FALSE(page.status().retry_after_ms().has_value());
  }
}

TEST_CASE_FIXTURE(Fixture, "Retry-After in seconds and as an HTTP date") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  http.push(kScoresV3, FakeHttpClient::response(
                           429, R"({"message":"Rate limit exceeded","code":"rate_limited"})",
                           {{"Retry-After", "7"}}));
  auto limited = client.scores(ScoreQuery{}, {});
  CHECK(limited.status().kind() == ErrorKind::kRateLimited);
  CHECK(limited.status().retry_after_ms() == 7000);
  CHECK(limited.status().message() == "GET /api/public/v3/scores: HTTP 429: Rate limit exceeded");

  // An IMF-fixdate 30 s after the fake clock's now.
  auto at = clock.now() + std::chrono::seconds(30);
  std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  http.push(kObservationsV2, FakeHttpClient::response(503, "", {{"retry-after", date}}));
  ObservationQuery query;
  query.trace_id = "t";
  auto unavailable = client.observations(query, {});
  CHECK(unavailable.status().kind() == ErrorKind::kRetryable);
  CHECK(unavailable.status().retry_after_ms() == 30000);
  CHECK(unavailable.status().message() == "GET /api/public/v2/observations: HTTP 503");

  http.push(kScoresV3, FakeHttpClient::response(429, "", {{"retry-after", "soon"}}));
  auto garbage = client.scores(ScoreQuery{}, {});
  CHECK(garbage.status().kind() == ErrorKind::kRateLimited);
  CHECK_FALSE(garbage.status().retry_after_ms().has_value());
}

TEST_CASE_FIXTURE(Fixture, "error messages: truncated, one line, never a key") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  http.push(kScoresV3, 401,
            std::string(R"({"message":"Invalid credentials for )") + kPublicKey + ":" + kSecretKey +
                R"(\nretry"})");
  auto auth = client.scores(ScoreQuery{}, {});
  CHECK(auth.status().kind() == ErrorKind::kAuth);
  CHECK(auth.status().message() ==
        "GET /api/public/v3/scores: HTTP 401: Invalid credentials for ***:*** retry");

  http.push(kScoresV3, 500, R"({"message":")" + std::string(1000, 'm') + R"("})");
  auto long_message = client.scores(ScoreQuery{}, {});
  CHECK(long_message.status().message() ==
        "GET /api/public/v3/scores: HTTP 500: " + std::string(200, 'm') + "...");

  http.push(kScoresV3, 502, "<html>Bad Gateway</html>");
  CHECK(client.scores(ScoreQuery{}, {}).status().message() ==
        "GET /api/public/v3/scores: HTTP 502");
}

TEST_CASE_FIXTURE(Fixture, "transport failures keep their kind and details, with context") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  http.push(kScoresV3, Status::Error(ErrorKind::kTooLarge, "response exceeded 1234567 bytes")
                           .with_detail(1'300'000));
  auto too_large = client.scores(ScoreQuery{}, {});
  CHECK(too_large.status().kind() == ErrorKind::kTooLarge);
  CHECK(too_large.status().detail() == 1'300'000);
  CHECK(too_large.status().message() ==
        "GET /api/public/v3/scores: response exceeded 1234567 bytes");

  http.push(kScoresV3, Status::Error(ErrorKind::kRetryable, "connection reset"));
  CHECK(client.scores(ScoreQuery{}, {}).status().kind() == ErrorKind::kRetryable);
}

TEST_CASE_FIXTURE(Fixture, "a 200 with a body that is not a page is retryable") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  http.push(kScoresV3, 200, R"({"data":[{"id":"x")");
  auto page = client.scores(ScoreQuery{}, {});
  CHECK(page.status().kind() == ErrorKind::kRetryable);
  CHECK(page.status().message().rfind("GET /api/public/v3/scores: malformed response: ", 0) == 0);
}

TEST_CASE_FIXTURE(Fixture, "the cursor just used is passed to the parser") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  http.push(kScoresV3, 200,
            R"({"data":[{"id":"a","name":"n","timestamp":"2025-01-01T00:00:00Z"}],)"
            R"("meta":{"limit":1,"cursor":"same"}})");
  ScoreQuery query;
  query.cursor = "same";
  CHECK(client.scores(query, {}).status().kind() == ErrorKind::kCorrupt);
}

TEST_CASE_FIXTURE(Fixture, "detect mode: unknown tries current, remembers it") {
  http.set_default(kScoresV3, FakeHttpClient::response(200, kEmptyV3));
  LangfuseClient client(http, clock, make_options());
  REQUIRE(client.scores(ScoreQuery{}, {}).ok());
  CHECK(client.generation() == ApiGeneration::kCurrent);
  CHECK(http.count(kScoresV3) == 1);
  CHECK(http.count(kScoresLegacy) == 0);
}

TEST_CASE_FIXTURE(Fixture, "detect mode: a 404 from the current API switches to legacy for good") {
  http.set_default(kScoresV3, FakeHttpClient::response(404, R"({"message":"Not Found"})"));
  http.set_default(kScoresLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  http.set_default(kObservationsLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  LangfuseClient client(http, clock, make_options());
  ScoreQuery query;
  query.cursor = "djM=";  // a current-API cursor means nothing to the legacy API
  auto page = client.scores(query, {});
  REQUIRE(page.ok());
  CHECK(client.generation() == ApiGeneration::kLegacy);
  auto requests = http.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].path == kScoresV3);
  CHECK(requests[1].path == kScoresLegacy);
  CHECK(requests[1].query == "page=1&limit=100");

  REQUIRE(client.scores(ScoreQuery{}, {}).ok());
  ObservationQuery obs;
  obs.trace_id = "t";
  REQUIRE(client.observations(obs, {}).ok());
  CHECK(http.count(kScoresV3) == 1);  // not asked again
  // Observations are another endpoint: detected on their own (v2 answers 404 here too).
  CHECK(http.count(kObservationsV2) == 1);
  CHECK(client.observations_generation() == ApiGeneration::kLegacy);
  REQUIRE(client.observations(obs, {}).ok());
  CHECK(http.count(kObservationsV2) == 1);
}

TEST_CASE_FIXTURE(Fixture, "detect mode: a 404 from the legacy API switches to current") {
  http.push(kObservationsLegacy, 404, R"({"message":"Not Found"})");
  http.push(kObservationsV2, 200, R"({"data":[],"meta":{}})");
  LangfuseClient client(http, clock, make_options());
  client.set_generation(ApiGeneration::kLegacy);
  ObservationQuery query;
  query.trace_id = "t";
  REQUIRE(client.observations(query, {}).ok());
  CHECK(client.observations_generation() == ApiGeneration::kCurrent);
  CHECK(client.generation() == ApiGeneration::kLegacy);  // scores are another endpoint
}

TEST_CASE_FIXTURE(Fixture, "both generations 404: kNotFound, generation unchanged") {
  LangfuseClient client(http, clock, make_options());
  auto page = client.scores(ScoreQuery{}, {});  // unscripted routes answer 404
  CHECK(page.status().kind() == ErrorKind::kNotFound);
  CHECK(client.generation() == ApiGeneration::kUnknown);
  CHECK(http.count() == 2);
}

TEST_CASE_FIXTURE(Fixture, "a pinned generation never falls back") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kLegacy));
  http.push(kScoresLegacy, 404, R"({"message":"Not Found"})");
  auto page = client.scores(ScoreQuery{}, {});
  CHECK(page.status().kind() == ErrorKind::kNotFound);
  CHECK(client.generation() == ApiGeneration::kLegacy);
  CHECK(http.count() == 1);
}

TEST_CASE_FIXTURE(Fixture, "health does not override a generation already known") {
  http.push("/api/public/health", 200, R"({"status":"OK","version":"4.1.0"})");
  LangfuseClient client(http, clock, make_options());
  client.set_generation(ApiGeneration::kLegacy);
  REQUIRE(client.health({}).ok());
  CHECK(client.generation() == ApiGeneration::kLegacy);
}

TEST_CASE_FIXTURE(Fixture, "a base URL with a path prefix is kept") {
  http.push("/langfuse/api/public/health", 200, R"({"status":"OK","version":"4.16.0"})");
  auto options = make_options();
  options.base_url = "https://127.0.0.1:8443/langfuse//";
  LangfuseClient client(http, clock, options);
  REQUIRE(client.health({}).ok());
  CHECK(http.requests()[0].url == "https://127.0.0.1:8443/langfuse/api/public/health");
}

TEST_CASE_FIXTURE(Fixture, "no call ever reaches /api/public/traces and no URL holds a key") {
  http.set_default("/api/public/health",
                   FakeHttpClient::response(200, R"({"status":"OK","version":"4.16.0"})"));
  http.set_default("/api/public/projects",
                   FakeHttpClient::response(200, R"({"data":[{"id":"p","name":"n"}]})"));
  http.set_default(kScoresV3, FakeHttpClient::response(200, kEmptyV3));
  http.set_default(kObservationsV2, FakeHttpClient::response(200, R"({"data":[],"meta":{}})"));
  LangfuseClient client(http, clock, make_options());
  REQUIRE(client.health({}).ok());
  REQUIRE(client.project({}).ok());
  ScoreQuery scores;
  scores.ids = {"x"};
  REQUIRE(client.scores(scores, {}).ok());
  ObservationQuery obs;
  obs.trace_id = "t-1";
  REQUIRE(client.observations(obs, {}).ok());
  for (const auto& request : http.requests()) {
    CAPTURE(request.url);
    CHECK(request.path.rfind("/api/public/traces", 0) != 0);
    CHECK(request.url.find(kSecretKey) == std::string::npos);
    CHECK(request.url.find(kPublicKey) == std::string::npos);
    for (const auto& [name, value] : request.headers) {
      CHECK(value.find(kSecretKey) == std::string::npos);
    }
  }
}

TEST_CASE_FIXTURE(Fixture, "a stop request reaches the transport") {
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  std::stop_source source;
  source.request_stop();
  auto page = client.scores(ScoreQuery{}, source.get_token());
  CHECK(page.status().kind() == ErrorKind::kCancelled);
}

TEST_CASE_FIXTURE(Fixture, "concurrent calls during generation detection") {
  http.set_default(kScoresV3, FakeHttpClient::response(404, "{}"));
  http.set_default(kScoresLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  LangfuseClient client(http, clock, make_options());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 25; ++j) {
        if (client.scores(ScoreQuery{}, {}).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 100);
  CHECK(client.generation() == ApiGeneration::kLegacy);
  CHECK(http.count(kScoresLegacy) == 100);
}

TEST_CASE_FIXTURE(Fixture, "generation per endpoint: v3 scores work, v2 observations 404") {
  // A v4 server in legacy write mode without the v4 preview: v3 scores, no v2 observations.
  http.push("/api/public/health", 200, R"({"status":"OK","version":"4.16.0"})");
  http.set_default(kScoresV3, FakeHttpClient::response(200, kEmptyV3));
  http.set_default(kObservationsV2, FakeHttpClient::response(404, R"({"message":"Not Found"})"));
  http.set_default(kObservationsLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  LangfuseClient client(http, clock, make_options());
  REQUIRE(client.health({}).ok());
  ObservationQuery query;
  query.trace_id = "t";
  REQUIRE(client.observations(query, {}).ok());
  REQUIRE(client.observations(query, {}).ok());
  REQUIRE(client.scores(ScoreQuery{}, {}).ok());
  CHECK(client.generation() == ApiGeneration::kCurrent);
  CHECK(client.observations_generation() == ApiGeneration::kLegacy);
  CHECK(http.count(kObservationsV2) == 1);  // remembered after the first fallback
  CHECK(http.count(kObservationsLegacy) == 2);
  CHECK(http.count(kScoresLegacy) == 0);
}

TEST_CASE_FIXTURE(Fixture, "pinned current: observations still fall back, scores never") {
  http.set_default(kScoresV3, FakeHttpClient::response(404, "{}"));
  http.set_default(kObservationsV2, FakeHttpClient::response(404, "{}"));
  http.set_default(kObservationsLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ObservationQuery query;
  query.trace_id = "t";
  CHECK(client.observations(query, {}).ok());
  CHECK(client.scores(ScoreQuery{}, {}).status().kind() == ErrorKind::kNotFound);
  CHECK(http.count(kScoresLegacy) == 0);
  CHECK(client.generation() == ApiGeneration::kCurrent);
}

TEST_CASE_FIXTURE(Fixture, "a 501 on v2 observations falls back like a 404") {
  http.push(kObservationsV2, 501, R"({"message":"Not implemented"})");
  http.push(kObservationsLegacy, 200, kEmptyLegacy);
  LangfuseClient client(http, clock, make_options());
  ObservationQuery query;
  query.trace_id = "t";
  query.cursor = "abc";
  REQUIRE(client.observations(query, {}).ok());
  CHECK(client.observations_generation() == ApiGeneration::kLegacy);
  auto requests = http.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].query == "traceId=t&page=1&limit=100");  // cursor dropped, full page
}

TEST_CASE_FIXTURE(Fixture, "legacy observations: pages of 100 unless shrunk for size") {
  http.set_default(kObservationsLegacy, FakeHttpClient::response(200, kEmptyLegacy));
  LangfuseClient client(http, clock, make_options(ApiGeneration::kLegacy));
  ObservationQuery query;
  query.trace_id = "t";
  query.limit = 10;
  REQUIRE(client.observations(query, {}).ok());
  query.limit = 5;
  query.size_reduced = true;
  REQUIRE(client.observations(query, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].query == "traceId=t&page=1&limit=100");
  CHECK(requests[1].query == "traceId=t&page=1&limit=5");
}

TEST_CASE_FIXTURE(Fixture, "v3: a score name with a comma is filtered here, not by the server") {
  const std::string body =
      R"({"data":[)"
      R"({"id":"1","name":"tone, style","timestamp":"2024-01-01T00:00:00Z","dataType":"NUMERIC","value":1,"source":"ANNOTATION"},)"
      R"({"id":"2","name":"tone","timestamp":"2024-01-01T00:00:00Z","dataType":"NUMERIC","value":1,"source":"ANNOTATION"},)"
      R"({"id":"3","name":"style","timestamp":"2024-01-01T00:00:00Z","dataType":"NUMERIC","value":1,"source":"ANNOTATION"}],)"
      R"("meta":{"limit":100,"cursor":"next"}})";
  http.push(kScoresV3, 200, body);
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ScoreQuery query;
  query.names = {"tone, style", "quality"};
  auto page = client.scores(query, {});
  REQUIRE(page.ok());
  REQUIRE(page->scores.size() == 1);
  CHECK(page->scores[0].id == "1");
  CHECK(page->next_cursor == "next");
  CHECK_FALSE(FakeHttpClient::query_param(http.requests()[0].query, "name").has_value());
}

TEST_CASE_FIXTURE(Fixture, "422 Request timed out is retryable; other 422s are too large") {
  http.push(kScoresV3, 422, R"({"message":"Request timed out"})");
  http.push(kScoresV3, 422, R"({"message":"Payload too large"})");
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  auto timeout = client.scores(ScoreQuery{}, {});
  CHECK(timeout.status().kind() == ErrorKind::kRetryable);
  CHECK(timeout.status().detail() == 422);
  CHECK(client.scores(ScoreQuery{}, {}).status().kind() == ErrorKind::kTooLarge);
}

TEST_CASE_FIXTURE(Fixture, "an observation query the server times out on is narrowed") {
  http.push(kObservationsV2, 422, R"({"message":"Request timed out"})");
  http.set_default(kObservationsV2, FakeHttpClient::response(200, R"({"data":[],"meta":{}})"));
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ObservationQuery query;
  query.trace_id = "t";
  query.anchor_time = "2026-03-31T12:00:00.000Z";
  REQUIRE(client.observations(query, {}).ok());
  CHECK(client.bounding_observation_queries());
  REQUIRE(client.observations(query, {}).ok());  // bounded from the start now
  ObservationQuery no_anchor;
  no_anchor.trace_id = "u";
  REQUIRE(client.observations(no_anchor, {}).ok());
  auto requests = http.requests();
  REQUIRE(requests.size() == 4);
  CHECK_FALSE(FakeHttpClient::query_param(requests[0].query, "fromStartTime").has_value());
  for (int i : {1, 2}) {
    CHECK(FakeHttpClient::query_param(requests[i].query, "fromStartTime") ==
          "2026-03-01T12:00:00.000Z");
    CHECK(FakeHttpClient::query_param(requests[i].query, "toStartTime") ==
          "2026-04-01T12:00:00.000Z");
  }
  CHECK_FALSE(FakeHttpClient::query_param(requests[3].query, "fromStartTime").has_value());
}

TEST_CASE_FIXTURE(Fixture, "a query timeout without an anchor is returned as retryable") {
  http.push(kObservationsV2, 422, R"({"message":"Request timed out"})");
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  ObservationQuery query;
  query.trace_id = "t";
  auto page = client.observations(query, {});
  CHECK(page.status().kind() == ErrorKind::kRetryable);
  CHECK(http.count() == 1);
  CHECK_FALSE(client.bounding_observation_queries());
}

TEST_CASE_FIXTURE(Fixture, "a score page carries the server's Date") {
  http.push(kScoresV3,
            FakeHttpClient::response(200, kEmptyV3, {{"date", "Tue, 01 Dec 2026 10:00:00 GMT"}}));
  http.push(kScoresV3, 200, kEmptyV3);
  LangfuseClient client(http, clock, make_options(ApiGeneration::kCurrent));
  auto dated = client.scores(ScoreQuery{}, {});
  REQUIRE(dated.ok());
  CHECK(dated->server_time == "2026-12-01T10:00:00.000Z");
  auto undated = client.scores(ScoreQuery{}, {});
  REQUIRE(undated.ok());
  CHECK_FALSE(undated->server_time.has_value());
}

}  // namespace
}  // namespace lfh
