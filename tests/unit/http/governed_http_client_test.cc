#include "http/governed_http_client.h"

#include <doctest/doctest.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lfh {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

HttpResponse response(long status, std::string body = "{}",
                      std::map<std::string, std::string> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

HttpRequest request(std::string endpoint = "scores") {
  HttpRequest r;
  r.url = "http://127.0.0.1:9/api/public/" + endpoint;
  r.endpoint = std::move(endpoint);
  return r;
}

// Answers from a script and notes the (fake) time each request reached it.
class ScriptedClient final : public HttpClient {
 public:
  ScriptedClient(Clock& clock, std::function<Result<HttpResponse>(int call)> script)
      : clock_(clock), script_(std::move(script)) {}
  Result<HttpResponse> get(const HttpRequest&, std::stop_token) override {
    int call = 0;
    {
      std::lock_guard lock(mu_);
      call = static_cast<int>(sent_at_.size());
      sent_at_.push_back(clock_.mono());
    }
    return script_(call);
  }
  std::vector<TimePoint> sent_at() const {
    std::lock_guard lock(mu_);
    return sent_at_;
  }

 private:
  Clock& clock_;
  std::function<Result<HttpResponse>(int)> script_;
  mutable std::mutex mu_;
  std::vector<TimePoint> sent_at_;
};

// Holds each request until every request that could be in flight is in flight, so a correct
// governor reaches exactly its cap and a broken one overshoots it. Each caller thread sends one
// request per round, so "could be in flight" is min(cap, requests of the round not completed).
class GatedClient final : public HttpClient {
 public:
  GatedClient(int cap, int round_size) : cap_(cap), total_(round_size) {}
  void next_round() {
    std::lock_guard lock(mu_);
    completed_ = 0;
  }
  Result<HttpResponse> get(const HttpRequest&, std::stop_token) override {
    std::unique_lock lock(mu_);
    ++in_flight_;
    peak_ = std::max(peak_, in_flight_);
    changed_.notify_all();
    // The timeout only turns a broken governor into a failed test instead of a hung one.
    if (!changed_.wait_for(lock, std::chrono::seconds(20),
                           [&] { return in_flight_ >= std::min(cap_, total_ - completed_); })) {
      stuck_ = true;
    }
    --in_flight_;
    ++completed_;
    changed_.notify_all();
    return response(200, "abc");
  }
  int peak() const {
    std::lock_guard lock(mu_);
    return peak_;
  }
  bool stuck() const {
    std::lock_guard lock(mu_);
    return stuck_;
  }

 private:
  const int cap_;
  const int total_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  int in_flight_ = 0;
  int completed_ = 0;
  int peak_ = 0;
  bool stuck_ = false;
};

}  // namespace

TEST_CASE("governed client never has more than the cap in flight, and reaches it") {
  FakeClock clock;
  RequestBudget budget(clock, 1000, RatePeriod::kSecond);
  constexpr int kCap = 3;
  constexpr int kThreads = 16;
  constexpr int kEach = 6;  // rounds
  GatedClient inner(kCap, kThreads);
  GovernedHttpClient governed(inner, budget, clock, kCap);
  for (int round = 0; round < kEach; ++round) {
    inner.next_round();
    std::vector<std::jthread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&] { CHECK(governed.get(request(), std::stop_token()).ok()); });
    }
  }
  CHECK_FALSE(inner.stuck());
  CHECK(inner.peak() == kCap);
  GovernedHttpClient::Stats stats = governed.stats();
  CHECK(stats.peak_in_flight == kCap);
  CHECK(stats.in_flight == 0);
  CHECK(stats.requests == kThreads * kEach);
  CHECK(stats.by_endpoint["scores"].status_2xx == kThreads * kEach);
  CHECK(stats.bytes_received == 3u * kThreads * kEach);
}

TEST_CASE("governed client paces requests with the budget and counts throttle waits") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int) { return Result<HttpResponse>(response(200)); });
  GovernedHttpClient governed(inner, budget, clock, 2);
  for (int i = 0; i < 5; ++i) CHECK(governed.get(request(), std::stop_token()).ok());
  std::vector<TimePoint> sent = inner.sent_at();
  REQUIRE(sent.size() == 5);
  for (std::size_t i = 1; i < sent.size(); ++i) {
    CHECK(sent[i] - sent[i - 1] == std::chrono::milliseconds(200));
  }
  GovernedHttpClient::Stats stats = governed.stats();
  CHECK(stats.throttle_waits == 4);
  CHECK(stats.throttle_wait == std::chrono::milliseconds(800));
}

TEST_CASE("a 429 with Retry-After holds back the whole process") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int call) {
    if (call == 0) return Result<HttpResponse>(response(429, "{}", {{"retry-after", "7"}}));
    return Result<HttpResponse>(response(200));
  });
  GovernedHttpClient governed(inner, budget, clock, 2);
  Result<HttpResponse> limited = governed.get(request(), std::stop_token());
  REQUIRE(limited.ok());
  CHECK(limited->status == 429);  // returned unchanged: the caller decides about retrying
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < 3; ++t) {
      workers.emplace_back([&] { CHECK(governed.get(request(), std::stop_token()).ok()); });
    }
  }
  std::vector<TimePoint> sent = inner.sent_at();
  REQUIRE(sent.size() == 4);
  for (std::size_t i = 1; i < sent.size(); ++i) {
    CHECK(sent[i] - sent[0] >= std::chrono::seconds(7));
  }
  GovernedHttpClient::Stats stats = governed.stats();
  CHECK(stats.rate_limited == 1);
  CHECK(stats.retry_after_penalties == 1);
  CHECK(stats.by_endpoint["scores"].status_4xx == 1);
  CHECK(stats.by_endpoint["scores"].status_2xx == 3);
}

TEST_CASE("a 503 with an HTTP-date Retry-After is honoured too") {
  FakeClock clock;  // starts at 2023-11-14T22:13:20Z, a Tuesday
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int call) {
    if (call == 0) {
      return Result<HttpResponse>(
          response(503, "", {{"retry-after", "Tue, 14 Nov 2023 22:13:30 GMT"}}));
    }
    return Result<HttpResponse>(response(200));
  });
  GovernedHttpClient governed(inner, budget, clock, 1);
  CHECK(governed.get(request(), std::stop_token()).ok());
  CHECK(governed.get(request(), std::stop_token()).ok());
  std::vector<TimePoint> sent = inner.sent_at();
  REQUIRE(sent.size() == 2);
  CHECK(sent[1] - sent[0] == std::chrono::seconds(10));
  CHECK(governed.stats().rate_limited == 0);
  CHECK(governed.stats().retry_after_penalties == 1);
}

TEST_CASE("garbage Retry-After and Retry-After on other statuses impose no penalty") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int call) {
    if (call == 0) return Result<HttpResponse>(response(429, "", {{"retry-after", "soon"}}));
    if (call == 1) return Result<HttpResponse>(response(500, "", {{"retry-after", "60"}}));
    return Result<HttpResponse>(response(200));
  });
  GovernedHttpClient governed(inner, budget, clock, 1);
  for (int i = 0; i < 3; ++i) CHECK(governed.get(request(), std::stop_token()).ok());
  std::vector<TimePoint> sent = inner.sent_at();
  REQUIRE(sent.size() == 3);
  CHECK(sent[2] - sent[0] == std::chrono::milliseconds(400));  // pacing only
  CHECK(governed.stats().rate_limited == 1);
  CHECK(governed.stats().retry_after_penalties == 0);
}

TEST_CASE("governed client counts statuses by endpoint, transport errors and bytes") {
  FakeClock clock;
  RequestBudget budget(clock, 100, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int call) -> Result<HttpResponse> {
    switch (call) {
      case 0:
        return response(200, "12345");
      case 1:
        return response(404, "nf");
      case 2:
        return response(500, "");
      case 3:
        return Status::Error(ErrorKind::kRetryable, "connect failed");
      case 4:
        return response(302, "");
      default:
        return response(200, "x");
    }
  });
  GovernedHttpClient governed(inner, budget, clock, 2);
  CHECK(governed.get(request("scores"), std::stop_token()).ok());
  CHECK(governed.get(request("observations"), std::stop_token()).ok());
  CHECK(governed.get(request("observations"), std::stop_token()).ok());
  CHECK(governed.get(request("observations"), std::stop_token()).status().kind() ==
        ErrorKind::kRetryable);
  CHECK(governed.get(request("health"), std::stop_token()).ok());
  CHECK(governed.get(request(""), std::stop_token()).ok());

  GovernedHttpClient::Stats stats = governed.stats();
  CHECK(stats.requests == 6);
  CHECK(stats.by_endpoint["scores"].status_2xx == 1);
  CHECK(stats.by_endpoint["observations"].status_4xx == 1);
  CHECK(stats.by_endpoint["observations"].status_5xx == 1);
  CHECK(stats.by_endpoint["observations"].transport_errors == 1);
  CHECK(stats.by_endpoint["health"].status_3xx == 1);
  CHECK(stats.by_endpoint["other"].status_2xx == 1);
  CHECK(stats.transport_errors == 1);
  CHECK(stats.bytes_received == 5 + 2 + 1);
}

TEST_CASE("a stop request before sending returns kCancelled without calling the inner client") {
  FakeClock clock;
  RequestBudget budget(clock, 5, RatePeriod::kSecond);
  ScriptedClient inner(clock, [](int) { return Result<HttpResponse>(response(200)); });
  GovernedHttpClient governed(inner, budget, clock, 1);
  std::stop_source stop;
  stop.request_stop();
  Result<HttpResponse> r = governed.get(request(), stop.get_token());
  CHECK(r.status().kind() == ErrorKind::kCancelled);
  CHECK(inner.sent_at().empty());
  CHECK(governed.stats().cancelled == 1);
  CHECK(governed.stats().requests == 0);
}

TEST_CASE("a stop request wakes a caller waiting for an in-flight slot") {
  FakeClock clock;
  RequestBudget budget(clock, 1000, RatePeriod::kSecond);
  std::mutex mu;
  std::condition_variable cv;
  bool first_inside = false;
  bool release_first = false;
  ScriptedClient inner(clock, [&](int) {
    std::unique_lock lock(mu);
    first_inside = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release_first; });
    return Result<HttpResponse>(response(200));
  });
  GovernedHttpClient governed(inner, budget, clock, 1);
  std::jthread holder([&] { CHECK(governed.get(request(), std::stop_token()).ok()); });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return first_inside; });
  }
  std::stop_source stop;
  std::jthread waiter([&] {
    CHECK(governed.get(request(), stop.get_token()).status().kind() == ErrorKind::kCancelled);
  });
  stop.request_stop();
  waiter.join();
  {
    std::lock_guard lock(mu);
    release_first = true;
  }
  cv.notify_all();
  holder.join();
  CHECK(inner.sent_at().size() == 1);
  CHECK(governed.stats().peak_in_flight == 1);
}

}  // namespace lfh
