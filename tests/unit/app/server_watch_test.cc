#include "app/server_watch.h"

#include <doctest/doctest.h>

#include "app/app_support.h"
#include "core/clock.h"
#include "support/fake_http_client.h"

namespace lfh {
namespace {

HttpRequest request_for(const std::string& path) {
  HttpRequest r;
  r.url = "http://127.0.0.1:9/" + path;
  return r;
}

}  // namespace

TEST_CASE("a server that never answered is silent since the first request") {
  testing::FakeHttpClient http;
  FakeClock clock;
  ServerWatch watch(http, clock);
  CHECK(watch.silent_for(clock.mono()) == Millis(0));  // nothing sent yet
  http.push("/api/public/health",
            Status::Error(ErrorKind::kRetryable, "timed out").with_detail(-28));
  (void)watch.get(request_for("api/public/health"), {});
  clock.advance(Millis(4000));
  CHECK(watch.silent_for(clock.mono()) == Millis(4000));
}

TEST_CASE("any HTTP answer, even a 429, ends the silence; a later transport failure starts it") {
  testing::FakeHttpClient http;
  FakeClock clock;
  ServerWatch watch(http, clock);
  http.push("/a", testing::FakeHttpClient::response(429, "{}", {{"retry-after", "48"}}));
  (void)watch.get(request_for("a"), {});
  CHECK(watch.silent_for(clock.mono()) == Millis(0));
  auto snapshot = watch.snapshot();
  REQUIRE(snapshot.retry_after);
  CHECK(*snapshot.retry_after == Millis(48'000));
  CHECK(snapshot.answers == 1);

  clock.advance(Millis(10'000));
  // A slow download still arriving is not silence: only a failure after the answer is.
  CHECK(watch.silent_for(clock.mono()) == Millis(0));
  // A reset fails at once: the breaker deals with it, it is not silence.
  http.push("/b", Status::Error(ErrorKind::kRetryable, "reset").with_detail(-56));
  (void)watch.get(request_for("b"), {});
  CHECK(watch.silent_for(clock.mono()) == Millis(0));
  http.push("/b", Status::Error(ErrorKind::kRetryable, "timed out").with_detail(-28));
  (void)watch.get(request_for("b"), {});
  CHECK(watch.silent_for(clock.mono()) == Millis(10'000));
  http.push("/c", 200, "{}");
  (void)watch.get(request_for("c"), {});
  CHECK(watch.silent_for(clock.mono()) == Millis(0));
}

TEST_CASE("a stop is not a failure of the server") {
  testing::FakeHttpClient http;
  FakeClock clock;
  ServerWatch watch(http, clock);
  http.push("/a", 200, "{}");
  (void)watch.get(request_for("a"), {});
  http.push("/b", Status::Error(ErrorKind::kCancelled, "stop requested"));
  (void)watch.get(request_for("b"), {});
  clock.advance(Millis(60'000));
  CHECK(watch.silent_for(clock.mono()) == Millis(0));
}

TEST_CASE("the progress line: done over queued, ETA from the budget, the reason of a wait") {
  ProgressFigures f;
  f.phase = "traces";
  f.done = 39;
  f.remaining = 978;
  f.elapsed_seconds = 13;
  f.budget_per_second = 5;
  // 978 queued traces at 5 requests/s: 196 s, whatever the 39 traces so far took.
  CHECK(render_progress(f) == "traces 39/1017 (3.0/s), ETA 3m16s at 5 requests/s");

  f.retry_after = Millis(48'000);
  f.retry_after_left = Millis(30'500);
  CHECK(render_progress(f) ==
        "traces 39/1017 (3.0/s), waiting for the server (Retry-After 48 s, 31 s left)");

  f.retry_after.reset();
  f.retry_after_left.reset();
  f.phase = "waiting";
  f.retries_waiting = 3;
  CHECK(render_progress(f) == "traces 39/1017 (3.0/s), waiting for the server (3 retries due)");

  f.phase = "traces";
  f.retries_waiting = 0;
  f.remaining = 90'000;
  f.budget_per_second = 25.0 / 60;
  CHECK(render_progress(f) == "traces 39/90039 (3.0/s), ETA 60h00m at 0.416667 requests/s");
  f.phase = "scores";
  CHECK(render_progress(f) == "polling scores...");
}

}  // namespace lfh
