#include "store/checkpoint_store.h"

#include <doctest/doctest.h>

#include "core/time_format.h"
#include "store/schema.h"
#include "support/temp_dir.h"

namespace lfh {
namespace {

Score make_score(const std::string& id, const std::string& trace, const std::string& ts,
                 const std::string& label) {
  Score s;
  s.id = id;
  s.name = "quality";
  s.source = "ANNOTATION";
  s.data_type = "CATEGORICAL";
  s.value_json = "\"" + label + "\"";
  s.string_value = label;
  s.subject_kind = "trace";
  s.trace_id = trace;
  s.timestamp = ts;
  s.raw_json = "{}";
  return s;
}

int64_t count(sql::Db& db, const std::string& query) {
  auto st = db.prepare(query);
  REQUIRE(st.ok());
  auto row = st->step();
  REQUIRE(row.ok());
  REQUIRE(*row);
  return st->int64(0);
}

}  // namespace

TEST_CASE("a new database is migrated, marked, and a newer one is refused") {
  testing::TempDir dir;
  FakeClock clock;
  {
    auto store = CheckpointStore::open(dir.file("a.db"), clock);
    REQUIRE(store.ok());
  }
  auto db = sql::Db::open(dir.file("a.db"), sql::Db::Mode::kReadWrite);
  REQUIRE(db.ok());
  CHECK(count(*db, "PRAGMA user_version") == latest_schema_version());
  CHECK(count(*db, "PRAGMA application_id") == kApplicationId);
  {
    auto jm = db->prepare("PRAGMA journal_mode");
    REQUIRE(jm.ok());
    REQUIRE(*jm->step());
    CHECK(jm->text(0) == "wal");
  }
  REQUIRE(db->exec("PRAGMA user_version = 999").ok());
  auto again = CheckpointStore::open(dir.file("a.db"), clock);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message().find("newer than this lfharvest") != std::string::npos);
}

TEST_CASE("a file of another program is refused") {
  testing::TempDir dir;
  FakeClock clock;
  {
    auto db = sql::Db::open(dir.file("other.db"), sql::Db::Mode::kReadWrite);
    REQUIRE(db.ok());
    REQUIRE(db->exec("PRAGMA application_id = 42; CREATE TABLE x(y)").ok());
  }
  auto store = CheckpointStore::open(dir.file("other.db"), clock);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().kind() == ErrorKind::kCorrupt);
}

TEST_CASE("score pages are idempotent, de-duplicated, and queue each trace once") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("s.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  std::vector<Score> page{make_score("s1", "t1", "2026-01-01T00:00:02.000Z", "Good"),
                          make_score("s2", "t1", "2026-01-01T00:00:01.000Z", "Bad"),
                          make_score("s1", "t1", "2026-01-01T00:00:02.000Z", "Good")};
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  auto c1 = st.apply_score_page("p", kStreamPoll, page, std::string("cur-2"), true, 1);
  REQUIRE(c1.ok());
  CHECK(c1->inserted == 2);
  CHECK(c1->traces_queued == 1);
  auto pass = st.pass_state("p", kStreamPoll);
  REQUIRE(pass.ok());
  CHECK(pass->in_progress());
  CHECK(pass->pass_cursor == std::optional<std::string>("cur-2"));

  // The same page again (a crash between commit and the next request): nothing changes.
  auto c2 = st.apply_score_page("p", kStreamPoll, page, std::nullopt, true, 2);
  REQUIRE(c2.ok());
  CHECK(c2->inserted == 0);
  CHECK(c2->unchanged == 2);
  CHECK(c2->traces_queued == 0);
  pass = st.pass_state("p", kStreamPoll);
  CHECK_FALSE(pass->in_progress());
  CHECK(pass->watermark == std::optional<std::string>("2026-01-01T00:00:02.000Z"));
  CHECK(pass->last_requests == 2);
  auto counts = st.trace_counts("p");
  REQUIRE(counts.ok());
  CHECK(counts->pending == 1);
}

TEST_CASE("an edited score is updated and its history kept; deletion and restore recorded") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("e.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  REQUIRE(st.apply_score_page("p", kStreamPoll,
                              {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Good")},
                              std::nullopt, true, 1)
              .ok());
  REQUIRE(st.begin_pass("p", kStreamRescan, std::nullopt).ok());
  auto c = st.apply_score_page("p", kStreamRescan,
                               {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Bad")},
                               std::nullopt, true, 1);
  REQUIRE(c.ok());
  CHECK(c->changed == 1);
  auto deleted = st.mark_scores_deleted("p", {"s1", "unknown"});
  REQUIRE(deleted.ok());
  CHECK(*deleted == 1);
  CHECK(*st.live_score_count("p") == 0);
  REQUIRE(st.begin_pass("p", kStreamRescan, std::nullopt).ok());
  auto r = st.apply_score_page("p", kStreamRescan,
                               {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Bad")},
                               std::nullopt, true, 1);
  REQUIRE(r.ok());
  CHECK(r->restored == 1);
  CHECK(*st.live_score_count("p") == 1);

  auto db = sql::Db::open(dir.file("e.db"), sql::Db::Mode::kReadOnly);
  REQUIRE(db.ok());
  CHECK(count(*db,
              "SELECT count(*) FROM score_changes WHERE change = 'edited' AND "
              "old_string_value = 'Good' AND new_string_value = 'Bad'") == 1);
  CHECK(count(*db, "SELECT count(*) FROM score_changes WHERE change = 'deleted'") == 1);
  CHECK(count(*db, "SELECT count(*) FROM score_changes WHERE change = 'restored'") == 1);
}

TEST_CASE("observation pages commit with their cursor; the last one finishes the trace") {
  testing::TempDir dir;
  FakeClock clock(*parse_iso8601("2026-01-01T12:00:00Z"));
  auto store = CheckpointStore::open(dir.file("o.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  REQUIRE(st.apply_score_page("p", kStreamPoll,
                              {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Good")},
                              std::nullopt, true, 1)
              .ok());
  auto due = st.due_traces("p", 10, {});
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  Observation o;
  o.id = "o1";
  o.trace_id = "t1";
  o.type = "GENERATION";
  o.start_time = "2026-01-01T11:59:00.000Z";  // one minute old: still settling
  REQUIRE(st.apply_observation_page("p", due->front(), {o}, std::string("c2"), 5,
                                    Millis(30 * 60 * 1000))
              .ok());
  due = st.due_traces("p", 10, {});
  REQUIRE(due->size() == 1);
  CHECK(due->front().cursor == std::optional<std::string>("c2"));
  CHECK(due->front().page_size == 5);
  o.id = "o2";
  REQUIRE(st.apply_observation_page("p", due->front(), {o}, std::nullopt, 5, Millis(30 * 60 * 1000))
              .ok());
  auto counts = st.trace_counts("p");
  CHECK(counts->done == 1);
  CHECK(counts->refetch_scheduled == 1);
  CHECK(st.due_traces("p", 10, {})->empty());
  clock.advance(std::chrono::minutes(31));
  due = st.due_traces("p", 10, {});
  REQUIRE(due->size() == 1);
  CHECK(due->front().refetch);
  CHECK_FALSE(due->front().cursor.has_value());
  REQUIRE(st.apply_observation_page("p", due->front(), {o}, std::nullopt, 5, Millis(30 * 60 * 1000))
              .ok());
  CHECK(st.trace_counts("p")->refetch_scheduled == 0);  // only once
}

TEST_CASE("retry and failed states, and requeue") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("r.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  REQUIRE(st.apply_score_page("p", kStreamPoll,
                              {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Good"),
                               make_score("s2", "t2", "2026-01-01T00:00:00Z", "Good")},
                              std::nullopt, true, 1)
              .ok());
  REQUIRE(
      st.mark_trace_retry("p", "t1", 1, clock.now() + std::chrono::seconds(30), "boom", 10).ok());
  REQUIRE(st.mark_trace_failed("p", "t2", "too_large", "big").ok());
  CHECK(st.due_traces("p", 10, {})->empty());
  auto next = st.next_due_at("p");
  REQUIRE(next.ok());
  CHECK(*next == format_iso8601(clock.now() + std::chrono::seconds(30)));
  clock.advance(std::chrono::seconds(31));
  CHECK(st.due_traces("p", 10, {})->size() == 1);
  CHECK(st.due_traces("p", 10, {"t1"})->empty());
  auto requeued = st.requeue(std::nullopt, false);
  REQUIRE(requeued.ok());
  CHECK(*requeued == 1);
  CHECK(st.due_traces("p", 10, {})->size() == 2);
}

}  // namespace lfh

namespace lfh {
namespace {

TEST_CASE("the newest copy of a score wins, in a page and across pages") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("n.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamRescan, std::nullopt).ok());
  // Re-saved on another day: the server lists both copies; the newer is listed first.
  Score newer = make_score("s1", "t1", "2026-01-03T00:00:00.000Z", "Good");
  Score older = make_score("s1", "t1", "2026-01-01T00:00:00.000Z", "Bad");
  auto first = st.apply_score_page("p", kStreamRescan, {newer}, std::string("c"), true, 1);
  REQUIRE(first.ok());
  auto second = st.apply_score_page("p", kStreamRescan, {older}, std::nullopt, true, 2);
  REQUIRE(second.ok());
  CHECK(second->changed == 0);
  CHECK(second->unchanged == 1);
  // Within one page the order does not matter either.
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  Score later_update = make_score("s2", "t2", "2026-01-02T00:00:00.000Z", "Good");
  later_update.updated_at = "2026-01-05T00:00:00.000Z";
  Score earlier_update = make_score("s2", "t2", "2026-01-02T00:00:00.000Z", "Bad");
  earlier_update.updated_at = "2026-01-04T00:00:00.000Z";
  REQUIRE(
      st.apply_score_page("p", kStreamPoll, {later_update, earlier_update}, std::nullopt, true, 1)
          .ok());
  auto db = sql::Db::open(dir.file("n.db"), sql::Db::Mode::kReadOnly);
  REQUIRE(db.ok());
  CHECK(count(*db, "SELECT count(*) FROM scores WHERE string_value = 'Good'") == 2);
  CHECK(count(*db, "SELECT count(*) FROM score_changes") == 0);
}

TEST_CASE("the watermark is capped at the server's now") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("w.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  REQUIRE(st.apply_score_page("p", kStreamPoll,
                              {make_score("ahead", "t1", "2026-01-01T18:00:00.000Z", "Good")},
                              std::nullopt, true, 1, std::string("2026-01-01T12:00:00.000Z"))
              .ok());
  auto pass = st.pass_state("p", kStreamPoll);
  REQUIRE(pass.ok());
  CHECK(pass->watermark == std::optional<std::string>("2026-01-01T12:00:00.000Z"));
}

TEST_CASE("an older version of an observation never replaces a newer one") {
  testing::TempDir dir;
  FakeClock clock;
  auto store = CheckpointStore::open(dir.file("v.db"), clock);
  REQUIRE(store.ok());
  auto& st = **store;
  REQUIRE(st.begin_pass("p", kStreamPoll, std::nullopt).ok());
  REQUIRE(st.apply_score_page("p", kStreamPoll,
                              {make_score("s1", "t1", "2026-01-01T00:00:00Z", "Good")},
                              std::nullopt, true, 1)
              .ok());
  auto due = st.due_traces("p", 10, {});
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK(due->front().anchor_time == std::optional<std::string>("2026-01-01T00:00:00Z"));
  Observation newer;
  newer.id = "o1";
  newer.trace_id = "t1";
  newer.type = "GENERATION";
  newer.start_time = "2026-01-01T00:00:00.000Z";
  newer.output_json = "\"new\"";
  newer.updated_at = "2026-01-02T00:00:00.000Z";
  Observation older = newer;
  older.output_json = "\"old\"";
  older.updated_at = "2026-01-01T00:00:00.000Z";
  REQUIRE(
      st.apply_observation_page("p", due->front(), {newer, older}, std::string("c"), 10, Millis(0))
          .ok());
  REQUIRE(st.apply_observation_page("p", due->front(), {older}, std::nullopt, 10, Millis(0)).ok());
  auto db = sql::Db::open(dir.file("v.db"), sql::Db::Mode::kReadOnly);
  REQUIRE(db.ok());
  CHECK(count(*db, "SELECT count(*) FROM observations WHERE output_json = '\"new\"'") == 1);
  CHECK(count(*db, "SELECT count(*) FROM trace_last_generation WHERE observation_id = 'o1'") == 1);
}

}  // namespace
}  // namespace lfh
