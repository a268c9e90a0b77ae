#include "sync/sync_engine.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "core/time_format.h"
#include "store/sqlite.h"
#include "support/fake_langfuse_api.h"
#include "support/temp_dir.h"

namespace lfh {
namespace {

using testing::FakeLangfuseApi;

// Everything a pass needs, wired with fakes.
struct Rig {
  explicit Rig(int workers = 1) : clock(*parse_iso8601("2026-03-01T12:00:00Z")), random(7) {
    settings.base_url = "http://127.0.0.1:1";
    settings.workers = workers;
    settings.observation_page_size = 2;
    settings.settle_time = Millis(0);
    settings.max_attempts = 4;
    settings.backoff_base = Millis(1000);
    settings.backoff_cap = Millis(8000);
    settings.max_wait = Millis(60'000);
    auto s = CheckpointStore::open(dir.file("t.db"), clock);
    REQUIRE(s.ok());
    store = std::move(s).value();
    breaker = std::make_unique<CircuitBreaker>(
        clock, CircuitBreakerOptions{3, Millis(1000), Millis(8000)});
    engine = std::make_unique<SyncEngine>(api, api, *store, *breaker, clock, random, settings);
    REQUIRE(engine->connect({}).ok());
  }
  int64_t count(const std::string& q) {
    auto db = sql::Db::open(dir.file("t.db"), sql::Db::Mode::kReadOnly);
    REQUIRE(db.ok());
    auto st = db->prepare(q);
    REQUIRE(st.ok());
    REQUIRE(*st->step());
    return st->int64(0);
  }
  std::string ts(int minutes_ago) {
    return format_iso8601(clock.now() - std::chrono::minutes(minutes_ago));
  }

  testing::TempDir dir;
  FakeClock clock;
  SeededRandom random;
  FakeLangfuseApi api;
  SyncSettings settings;
  std::unique_ptr<CheckpointStore> store;
  std::unique_ptr<CircuitBreaker> breaker;
  std::unique_ptr<SyncEngine> engine;
};

}  // namespace

TEST_CASE("a pass stores every annotated trace's observations, page by page") {
  Rig rig(2);
  for (int i = 0; i < 30; ++i) rig.api.add_annotated_trace(rig.ts(100 + i), "Good", 2, 1);
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(r.traces_done == 30);
  CHECK(r.counts.done == 30);
  CHECK(rig.count("SELECT count(*) FROM observations") == 30 * 4);
  CHECK(rig.count("SELECT count(*) FROM scores") == 30);
  // 4 observations per trace at 2 per page: exactly 2 requests per trace.
  CHECK(rig.api.calls("observations") == 60);
  CHECK(rig.api.calls("traces") == 0);
}

TEST_CASE("a pass with nothing new costs one score request and no observation request") {
  Rig rig;
  for (int i = 0; i < 5; ++i) rig.api.add_annotated_trace(rig.ts(100 + i), "Good");
  REQUIRE(rig.engine->run_pass({}).outcome == PassReport::Outcome::kComplete);
  int scores_before = rig.api.calls("scores");
  int obs_before = rig.api.calls("observations");
  rig.clock.advance(std::chrono::minutes(1));
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(rig.api.calls("scores") - scores_before == 1);
  CHECK(rig.api.calls("observations") == obs_before);
  // The incremental poll asks from the newest timestamp seen minus the overlap.
  auto q = rig.api.score_queries().back();
  REQUIRE(q.from_timestamp);
  CHECK(*q.from_timestamp ==
        format_iso8601(*parse_iso8601(rig.ts(100 + 1)) - std::chrono::minutes(15)));
}

TEST_CASE("transient failures are retried within the pass with backoff") {
  Rig rig;
  rig.api.add_annotated_trace(rig.ts(10), "Good");
  rig.api.fail_next("observations", Status::Error(ErrorKind::kRetryable, "HTTP 502"), 2);
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(r.traces_done == 1);
  CHECK(r.retries_scheduled == 2);
  CHECK(rig.count("SELECT attempts FROM traces") == 0);
  CHECK(rig.clock.slept() > Millis(0));
}

TEST_CASE("Retry-After is honoured: no retry before the time the server asked for") {
  Rig rig;
  rig.api.add_annotated_trace(rig.ts(10), "Good");
  rig.api.fail_next("observations",
                    Status::Error(ErrorKind::kRateLimited, "HTTP 429").with_retry_after_ms(7000));
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(rig.clock.slept() >= Millis(7000));
}

TEST_CASE("a trace that keeps failing is failed after max_attempts; the rest completes") {
  Rig rig;
  std::string bad = rig.api.add_annotated_trace(rig.ts(10), "Good");
  rig.api.add_annotated_trace(rig.ts(11), "Bad");
  rig.api.observation_fault = [&](const ObservationQuery& q) -> std::optional<Status> {
    if (q.trace_id == bad) return Status::Error(ErrorKind::kCorrupt, "malformed response");
    return std::nullopt;
  };
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(r.traces_done == 1);
  CHECK(r.traces_failed == 1);
  CHECK(rig.count("SELECT count(*) FROM traces WHERE state = 'failed' AND "
                  "failure_reason = 'max_attempts'") == 1);
  CHECK(rig.api.observation_queries().size() == 4 + 1);  // 4 attempts + 1 good page
}

TEST_CASE("a page over the size cap is retried smaller; one observation over it fails the trace") {
  Rig rig;
  rig.settings.observation_page_size = 8;
  Rig* p = &rig;
  (void)p;
  std::string big = rig.api.add_annotated_trace(rig.ts(10), "Good", 3);
  std::string huge = rig.api.add_annotated_trace(rig.ts(11), "Good", 1);
  rig.api.observation_fault = [&](const ObservationQuery& q) -> std::optional<Status> {
    if (q.trace_id == big && q.limit > 1)
      return Status::Error(ErrorKind::kTooLarge, "cap").with_detail(70 << 20);
    if (q.trace_id == huge) return Status::Error(ErrorKind::kTooLarge, "cap").with_detail(99);
    return std::nullopt;
  };
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(rig.count(fmt::format("SELECT count(*) FROM observations WHERE trace_id = '{}'", big)) ==
        4);
  CHECK(rig.count(fmt::format("SELECT page_size FROM traces WHERE trace_id = '{}'", big)) == 1);
  CHECK(rig.count("SELECT count(*) FROM traces WHERE failure_reason = 'too_large'") == 1);
  // No retry loop for the single huge observation: the attempts at sizes 2 and 1, then failed.
  int huge_calls = 0;
  for (const auto& q : rig.api.observation_queries()) huge_calls += q.trace_id == huge;
  CHECK(huge_calls == 2);
}

TEST_CASE("a retry further away than max_wait ends the pass as waiting") {
  Rig rig;
  rig.engine->settings().max_wait = Millis(1000);
  rig.api.add_annotated_trace(rig.ts(10), "Good");
  rig.api.fail_next(
      "observations",
      Status::Error(ErrorKind::kRateLimited, "HTTP 429").with_retry_after_ms(120'000));
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kWaiting);
  CHECK(r.counts.retry == 1);
  REQUIRE(r.next_retry_at);
  // The next pass, after the wait, finishes it.
  rig.clock.advance(std::chrono::minutes(3));
  PassReport again = rig.engine->run_pass({});
  CHECK(again.outcome == PassReport::Outcome::kComplete);
  CHECK(again.counts.done == 1);
}

TEST_CASE("bad keys stop the pass as fatal") {
  Rig rig;
  rig.api.add_annotated_trace(rig.ts(10), "Good");
  rig.api.fail_next("scores", Status::Error(ErrorKind::kAuth, "HTTP 401: invalid key"));
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kFatal);
  CHECK(r.error.kind() == ErrorKind::kAuth);
}

TEST_CASE("an outage opens the breaker; probes are spaced; the pass resumes by itself") {
  Rig rig;
  for (int i = 0; i < 3; ++i) rig.api.add_annotated_trace(rig.ts(10 + i), "Good");
  rig.api.fail_next("scores", Status::Error(ErrorKind::kRetryable, "HTTP 503"), 3);
  rig.api.fail_next("health", Status::Error(ErrorKind::kRetryable, "HTTP 503"), 2);
  int health_before = rig.api.calls("health");
  PassReport r = rig.engine->run_pass({});
  CHECK(r.outcome == PassReport::Outcome::kComplete);
  CHECK(r.counts.done == 3);
  CHECK(rig.breaker->counters().opens == 1);
  CHECK(rig.api.calls("health") - health_before == 3);  // 2 failed probes + 1 good
  // Probe intervals 1 s, 2 s, 4 s: the pass waited at least that long without other requests.
  CHECK(rig.clock.slept() >= Millis(1000 + 2000));
}

TEST_CASE("a pass stopped mid-trace resumes at the saved cursor, re-fetching nothing") {
  Rig rig;
  std::string t = rig.api.add_annotated_trace(rig.ts(10), "Good", 4, 1);  // 6 obs = 3 pages
  std::stop_source stop;
  int pages = 0;
  rig.api.observation_fault = [&](const ObservationQuery&) -> std::optional<Status> {
    if (++pages == 2) stop.request_stop();
    return std::nullopt;
  };
  PassReport first = rig.engine->run_pass(stop.get_token());
  CHECK(first.outcome == PassReport::Outcome::kCancelled);
  rig.api.observation_fault = nullptr;
  size_t before = rig.api.observation_queries().size();
  PassReport second = rig.engine->run_pass({});
  CHECK(second.outcome == PassReport::Outcome::kComplete);
  auto queries = rig.api.observation_queries();
  REQUIRE(queries.size() == before + 1);
  CHECK(queries.back().cursor == std::optional<std::string>("4"));
  CHECK(rig.count("SELECT count(*) FROM observations") == 6);
}

TEST_CASE("maintenance: a re-scan records edits, a sweep records deletions") {
  Rig rig;
  std::vector<std::string> traces;
  // Two hours apart: only the newest is inside the poll's 15-minute overlap.
  for (int i = 0; i < 5; ++i) {
    traces.push_back(rig.api.add_annotated_trace(rig.ts(60 + 120 * i), "Good"));
  }
  REQUIRE(rig.engine->run_pass({}).outcome == PassReport::Outcome::kComplete);
  rig.api.edit_score("score-00004", "\"Bad\"", "Bad");
  rig.api.delete_score("score-00003");
  // Not due yet: the first harvest counts as a re-scan and a sweep.
  rig.clock.advance(std::chrono::minutes(5));
  PassReport quiet = rig.engine->run_pass({});
  CHECK_FALSE(quiet.maintenance.rescan_ran);
  CHECK_FALSE(quiet.maintenance.sweep_ran);
  rig.clock.advance(rig.settings.sweep_interval);
  PassReport r = rig.engine->run_pass({});
  CHECK(r.maintenance.rescan_ran);
  CHECK(r.maintenance.edits_seen == 1);
  CHECK(r.maintenance.sweep_complete);
  CHECK(r.maintenance.deletions_seen == 1);
  CHECK(rig.count("SELECT count(*) FROM live_scores") == 4);
  CHECK(rig.count("SELECT count(*) FROM scores WHERE score_id = 'score-00004' AND "
                  "string_value = 'Bad'") == 1);
  CHECK(rig.count("SELECT count(*) FROM scores WHERE score_id = 'score-00003' AND "
                  "deleted_at IS NOT NULL") == 1);
  auto last = rig.api.score_queries().back();
  CHECK(last.ids.size() == 5);       // one batch with every id it believed live
  CHECK(quiet.scores_changed == 0);  // the edit was outside the poll's overlap window
}

TEST_CASE("sweep slices spread a large sweep over half the interval") {
  CHECK(Maintenance::sweep_batches_per_pass(20'000, Millis(24 * 3600 * 1000), Millis(60'000)) == 1);
  CHECK(Maintenance::sweep_batches_per_pass(2'000'000, Millis(24 * 3600 * 1000), Millis(60'000)) ==
        28);
  CHECK(Maintenance::sweep_batches_per_pass(0, Millis(1000), Millis(60'000)) == 1);
}

}  // namespace lfh

namespace lfh {

TEST_CASE("a trace fetched while still being written is fetched once more after settling") {
  Rig rig;
  rig.engine->settings().settle_time = Millis(30 * 60 * 1000);
  std::string trace = rig.api.add_annotated_trace(rig.ts(0), "Good");  // written just now
  PassReport first = rig.engine->run_pass({});
  CHECK(first.outcome == PassReport::Outcome::kComplete);
  CHECK(first.counts.refetch_scheduled == 1);
  const int64_t before = rig.count("SELECT count(*) FROM observations");
  Observation late;
  late.id = trace + "-late";
  late.trace_id = trace;
  late.type = "GENERATION";
  late.start_time = rig.ts(0);
  late.output_json = R"({"role":"assistant","content":"late"})";
  rig.api.add_observation(late);
  rig.clock.advance(std::chrono::minutes(10));
  PassReport early = rig.engine->run_pass({});
  CHECK(early.traces_done == 0);  // not settled yet
  rig.clock.advance(std::chrono::minutes(25));
  PassReport settled = rig.engine->run_pass({});
  CHECK(settled.traces_done == 1);
  CHECK(rig.count("SELECT count(*) FROM observations") == before + 1);
  CHECK(settled.counts.refetch_scheduled == 0);  // once only
  rig.clock.advance(std::chrono::hours(2));
  CHECK(rig.engine->run_pass({}).traces_done == 0);
}

}  // namespace lfh
