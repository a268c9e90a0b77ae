#include "sync/trace_fetch_queue.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "core/time_format.h"
#include "http/circuit_breaker.h"
#include "http/rate_limiter.h"
#include "store/sqlite.h"
#include "support/fake_langfuse_api.h"
#include "support/temp_dir.h"

namespace lfh {
namespace {

using testing::FakeLangfuseApi;

constexpr int64_t kBig = 1000 * 1000;  // the threshold of these tests

// The in-memory Langfuse with sizes: a page's body_bytes is the sum of its observations'
// input sizes, and every call records who else was in flight when it started. The checks are
// safety properties (a big trace never shares the server), so they hold whatever the timing.
class SizedApi final : public LangfuseApi {
 public:
  explicit SizedApi(FakeLangfuseApi& inner) : inner_(inner) {}

  std::set<std::string> big_traces;
  // Time each call of a trace takes on the clock (a busy server answers slowly).
  std::map<std::string, Millis> latency;
  FakeClock* clock = nullptr;
  // Failures for a trace's next calls (kRetryable with a size: a response cut off mid-way).
  std::map<std::string, std::deque<Status>> failures;

  Result<ServerInfo> health(std::stop_token s) override { return inner_.health(s); }
  Result<ProjectInfo> project(std::stop_token s) override { return inner_.project(s); }
  ApiGeneration generation() const override { return inner_.generation(); }
  void set_generation(ApiGeneration g) override { inner_.set_generation(g); }
  Result<ScorePage> scores(const ScoreQuery& q, std::stop_token s) override {
    return inner_.scores(q, s);
  }
  Result<ObservationPage> observations(const ObservationQuery& q, std::stop_token s) override {
    std::optional<Status> failure;
    {
      std::lock_guard lock(mu_);
      in_flight_.insert(q.trace_id);
      const bool big = big_traces.count(q.trace_id) > 0;
      if (in_flight_.size() > 1) {
        for (const auto& t : in_flight_) {
          if (big_traces.count(t) > 0) ++big_shared_;
        }
        ++overlaps_;
      }
      peak_ = std::max(peak_, static_cast<int>(in_flight_.size()));
      if (big) limits_of_big_.push_back(q.limit);
      auto it = failures.find(q.trace_id);
      if (it != failures.end() && !it->second.empty()) {
        failure = it->second.front();
        it->second.pop_front();
      }
    }
    if (clock != nullptr) {
      auto it = latency.find(q.trace_id);
      if (it != latency.end()) clock->advance(it->second);
    }
    // Give the other workers every chance to (wrongly) start while this call is in flight.
    for (int i = 0; i < 200; ++i) std::this_thread::yield();
    Result<ObservationPage> page =
        failure ? Result<ObservationPage>(*failure) : inner_.observations(q, s);
    if (page.ok()) {
      for (const auto& o : page->observations) page->body_bytes += o.input_json.size();
    }
    std::lock_guard lock(mu_);
    in_flight_.erase(q.trace_id);
    return page;
  }

  int big_shared() const {
    std::lock_guard lock(mu_);
    return big_shared_;
  }
  int overlaps() const {
    std::lock_guard lock(mu_);
    return overlaps_;
  }
  std::vector<int> limits_of_big() const {
    std::lock_guard lock(mu_);
    return limits_of_big_;
  }

 private:
  FakeLangfuseApi& inner_;
  mutable std::mutex mu_;
  std::set<std::string> in_flight_;
  int big_shared_ = 0;  // calls that started with a big trace in flight and another call
  int overlaps_ = 0;
  int peak_ = 0;
  std::vector<int> limits_of_big_;
};

struct Rig {
  explicit Rig(int workers) : clock(*parse_iso8601("2026-03-01T12:00:00Z")), random(3), api(inner) {
    settings.workers = workers;
    settings.observation_page_size = 4;
    settings.settle_time = Millis(0);
    settings.max_attempts = 6;
    settings.backoff_base = Millis(1000);
    settings.backoff_cap = Millis(4000);
    settings.max_wait = Millis(60'000);
    settings.big_response_bytes = kBig;
    settings.requests_per_second = 8;
    open_store();
    breaker = std::make_unique<CircuitBreaker>(
        clock, CircuitBreakerOptions{50, Millis(1000), Millis(8000)});
    gate = std::make_unique<ServerGate>(api, *breaker, clock);
    fetcher = std::make_unique<TraceFetcher>(api, *store, *gate, clock, random, settings);
  }
  void open_store() {
    auto s = CheckpointStore::open(dir.file("t.db"), clock);
    REQUIRE(s.ok());
    store = std::move(s).value();
    REQUIRE(store->upsert_project({"p", "project"}, "http://127.0.0.1:1", ServerInfo{}).ok());
  }
  // A trace with `generations` generations (inputs of `input_bytes` each) queued for fetching.
  std::string add_trace(int index, int generations, size_t input_bytes) {
    std::string trace = fmt::format("t{:03d}", index);
    for (int g = 0; g < generations; ++g) {
      Observation o;
      o.id = fmt::format("{}-o{}", trace, g);
      o.trace_id = trace;
      o.type = "GENERATION";
      o.start_time = format_iso8601(clock.now() - std::chrono::minutes(100 + g));
      o.input_json = "\"" + std::string(input_bytes, 'x') + "\"";
      inner.add_observation(o);
    }
    Score s;
    s.id = "s-" + trace;
    s.name = "quality";
    s.source = "ANNOTATION";
    s.data_type = "CATEGORICAL";
    s.value_json = "\"Good\"";
    s.string_value = "Good";
    s.subject_kind = "trace";
    s.trace_id = trace;
    s.timestamp = format_iso8601(clock.now() - std::chrono::minutes(10 + index));
    s.raw_json = "{}";
    REQUIRE(store->begin_pass("p", kStreamPoll, std::nullopt).ok());
    REQUIRE(store->apply_score_page("p", kStreamPoll, {s}, std::nullopt, true, 1).ok());
    return trace;
  }
  int64_t count(const std::string& q) {
    auto db = sql::Db::open(dir.file("t.db"), sql::Db::Mode::kReadOnly);
    REQUIRE(db.ok());
    auto st = db->prepare(q);
    REQUIRE(st.ok());
    REQUIRE(*st->step());
    return st->int64(0);
  }

  testing::TempDir dir;
  FakeClock clock;
  SeededRandom random;
  FakeLangfuseApi inner;
  SizedApi api;
  SyncSettings settings;
  std::unique_ptr<CheckpointStore> store;
  std::unique_ptr<CircuitBreaker> breaker;
  std::unique_ptr<ServerGate> gate;
  std::unique_ptr<TraceFetcher> fetcher;
};

}  // namespace

TEST_CASE("a trace found big is held in the database and fetched alone, one observation per page") {
  Rig rig(3);
  std::vector<std::string> small;
  for (int i = 0; i < 12; ++i) small.push_back(rig.add_trace(i, 3, 100));
  const std::string big = rig.add_trace(50, 6, 600 * 1000);  // 4 per page: 2.4 MB > 1 MB
  rig.api.big_traces.insert(big);
  TraceFetchQueue queue(*rig.fetcher, *rig.store, *rig.gate, rig.clock, rig.settings);
  TraceFetchRound round = queue.run("p", {});
  REQUIRE(round.fatal.ok());
  CHECK(round.traces_done == 13);
  CHECK(rig.count("SELECT count(*) FROM observations") == 12 * 3 + 6);
  CHECK(rig.count("SELECT count(*) FROM traces WHERE big_since IS NOT NULL") == 1);
  CHECK(rig.count(fmt::format("SELECT largest_page_bytes FROM traces WHERE trace_id = '{}'", big)) >
        kBig);
  // The first page (4 observations) taught it; the other 2 came one per page.
  const std::vector<int> limits = rig.api.limits_of_big();
  REQUIRE(limits.size() == 3);
  CHECK(limits[0] == 4);
  CHECK(limits[1] == 1);
  CHECK(limits[2] == 1);
  ServerSafety safety = queue.safety();
  CHECK(safety.traces_learned_big == 1);
  CHECK(safety.largest_response > kBig);
  CHECK(safety.crashes == 0);
  CHECK_FALSE(safety.careful);
}

TEST_CASE("after a restart a big trace never shares the server") {
  Rig rig(3);
  const std::string big = rig.add_trace(50, 3, 600 * 1000);
  rig.api.big_traces.insert(big);
  REQUIRE(rig.store->mark_trace_big("p", big, 2 * kBig).ok());  // learned by an earlier process
  for (int i = 0; i < 20; ++i) rig.add_trace(i, 2, 100);
  TraceFetchQueue queue(*rig.fetcher, *rig.store, *rig.gate, rig.clock, rig.settings);
  TraceFetchRound round = queue.run("p", {});
  REQUIRE(round.fatal.ok());
  CHECK(round.traces_done == 21);
  CHECK(rig.api.big_shared() == 0);
  const std::vector<int> limits = rig.api.limits_of_big();
  CHECK(limits == std::vector<int>{1, 1, 1});
}

TEST_CASE(
    "a crash with a big response in flight: counted once, and unknown traces go one at a time") {
  Rig rig(2);
  const std::string big = rig.add_trace(0, 2, 700 * 1000);
  rig.api.big_traces.insert(big);
  // The server dies while sending the big page: the response is cut off after 1.4 MB.
  rig.api.failures[big].push_back(
      Status::Error(ErrorKind::kRetryable, "connection reset").with_detail(1'400'000));
  for (int i = 1; i <= 10; ++i) rig.add_trace(i, 2, 100);
  RequestBudget budget(rig.clock, 8, RatePeriod::kSecond);
  TraceFetchQueue queue(*rig.fetcher, *rig.store, *rig.gate, rig.clock, rig.settings, &budget);
  TraceFetchRound round = queue.run("p", {});
  REQUIRE(round.fatal.ok());
  CHECK(round.traces_done == 11);
  ServerSafety safety = queue.safety();
  CHECK(safety.crashes == 1);
  CHECK(safety.outages == 1);
  CHECK(safety.careful);
  CHECK(safety.effective_concurrency >= 1);
  CHECK(rig.count(fmt::format("SELECT big_since IS NOT NULL FROM traces WHERE trace_id = '{}'",
                              big)) == 1);
  // The first try did not know; every later one asked for one observation at a time.
  const std::vector<int> limits = rig.api.limits_of_big();
  REQUIRE(limits.size() >= 3);
  CHECK(limits.front() == 4);
  CHECK(std::all_of(limits.begin() + 1, limits.end(), [](int l) { return l == 1; }));

  // Careful mode carries over (through restore) and holds unknown traces apart.
  Rig next(2);
  for (int i = 0; i < 12; ++i) next.add_trace(i, 2, 100);
  TraceFetchQueue careful(*next.fetcher, *next.store, *next.gate, next.clock, next.settings);
  careful.restore(safety);
  REQUIRE(careful.run("p", {}).traces_done == 12);
  CHECK(next.api.overlaps() == 0);
}

TEST_CASE("distress halves the concurrency and the rate; healthy fetches bring them back") {
  Rig rig(4);
  RequestBudget budget(rig.clock, 8, RatePeriod::kSecond);
  std::vector<std::string> traces;
  for (int i = 0; i < 120; ++i) traces.push_back(rig.add_trace(i, 1, 100));
  for (int i = 0; i < 3; ++i) {
    rig.api.failures[traces[static_cast<size_t>(i)]].push_back(
        Status::Error(ErrorKind::kRetryable, "HTTP 502: <html>nginx</html>").with_detail(502));
  }
  TraceFetchQueue queue(*rig.fetcher, *rig.store, *rig.gate, rig.clock, rig.settings, &budget);
  CHECK(queue.safety().effective_concurrency == 4);
  // The low point, sampled from the progress callback (called after every completion).
  int lowest_limit = 4;
  double lowest_scale = 1;
  TraceFetchRound round = queue.run("p", {}, [&](int64_t, int64_t, int64_t, bool) {
    lowest_limit = std::min(lowest_limit, queue.safety().effective_concurrency);
    lowest_scale = std::min(lowest_scale, budget.rate_scale());
  });
  REQUIRE(round.fatal.ok());
  CHECK(round.traces_done == 120);
  CHECK(lowest_limit <= 2);
  CHECK(lowest_scale <= 0.5);
  ServerSafety safety = queue.safety();
  CHECK(safety.outages >= 1);
  CHECK(safety.crashes == 0);  // nothing big was in flight: an outage, not a crash
  // The healthy fetches after the failures are enough to climb back to the caps, not above.
  CHECK(safety.effective_concurrency == 4);
  CHECK(budget.rate_scale() == doctest::Approx(1.0));
  CHECK(safety.effective_rate == doctest::Approx(8.0));
}

TEST_CASE("rising latency slows the client before any error; fast answers bring it back") {
  Rig rig(1);
  rig.api.clock = &rig.clock;
  RequestBudget budget(rig.clock, 8, RatePeriod::kSecond);
  for (int i = 0; i < 100; ++i) {
    const std::string t = rig.add_trace(i, 1, 100);
    // 20 ms normally; ten traces in the middle answered in 900 ms (a server getting busy).
    rig.api.latency[t] = i >= 20 && i < 30 ? Millis(900) : Millis(20);
  }
  TraceFetchQueue queue(*rig.fetcher, *rig.store, *rig.gate, rig.clock, rig.settings, &budget);
  queue.use_latency_signal(true);
  double lowest_scale = 1;
  TraceFetchRound round = queue.run("p", {}, [&](int64_t, int64_t, int64_t, bool) {
    lowest_scale = std::min(lowest_scale, budget.rate_scale());
  });
  REQUIRE(round.fatal.ok());
  CHECK(round.traces_done == 100);
  // One slow stretch: one halving, no outage counted (the server never failed).
  CHECK(lowest_scale == doctest::Approx(0.5));
  ServerSafety safety = queue.safety();
  CHECK(safety.outages == 0);
  CHECK(budget.rate_scale() == doctest::Approx(1.0));
}

TEST_CASE("what counts as distress") {
  TraceFetchResult r;
  r.outcome = TraceFetchResult::Outcome::kRetry;
  r.error = Status::Error(ErrorKind::kRetryable, "HTTP 503");
  CHECK(TraceFetchQueue::is_distress(r));
  r.error = Status::Error(ErrorKind::kRateLimited, "HTTP 429");
  CHECK_FALSE(TraceFetchQueue::is_distress(r));  // a healthy server asking us to slow down
  r.error = Status::Error(ErrorKind::kPermanent, "HTTP 400");
  CHECK_FALSE(TraceFetchQueue::is_distress(r));
  r.outcome = TraceFetchResult::Outcome::kDone;
  r.error = Status::Ok();
  CHECK_FALSE(TraceFetchQueue::is_distress(r));
}

}  // namespace lfh
