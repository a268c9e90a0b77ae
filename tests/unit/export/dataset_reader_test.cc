// The export side's SQL: which scores select a trace, which score represents it, which
// observations a pick returns, and that paging never changes the rows.
#include "store/dataset_reader.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "export/export_fixture.h"

namespace lfh {
namespace {

using testing::ObservationRow;
using testing::ScoreRow;
using testing::TempDir;
using testing::TraceRow;

struct Fixture {
  TempDir dir;
  std::string path = dir.file("reader.db");
  Fixture() {
    sql::Db db = testing::open_migrated(path);
    testing::build_golden_fixture(db);
  }
};

// "trace|observation|score" for every row, in order.
std::vector<std::string> rows(const std::string& path, const DatasetQuery& query,
                              PageLimits limits = {}) {
  auto reader = DatasetReader::open(path);
  REQUIRE(reader.ok());
  REQUIRE(reader->start(query, limits).ok());
  std::vector<std::string> out;
  DatasetRow row;
  for (;;) {
    auto more = reader->next(row);
    REQUIRE_MESSAGE(more.ok(), more.status().to_string());
    if (!*more) break;
    out.push_back(row.trace_id + "|" + (row.has_observation ? row.observation_id : "-") + "|" +
                  row.score_id);
  }
  return out;
}

std::vector<std::string> traces(const std::string& path, const DatasetQuery& query) {
  std::vector<std::string> out;
  for (const std::string& r : rows(path, query)) out.push_back(r.substr(0, r.find('|')));
  return out;
}

}  // namespace

TEST_CASE("default query: annotation scores of fetched traces, one representative per trace") {
  Fixture f;
  DatasetQuery query;
  query.source = "ANNOTATION";
  CHECK(rows(f.path, query) == std::vector<std::string>{
                                   "t01-string-input|o01-gen|s01",
                                   "t02-openai-response|o02-gen|s02",
                                   "t03-tool-calls|o03-gen-2|s03",
                                   "t04-unicode|o04-gen|s04",
                                   "t05-missing-output|o05-gen|s05",
                                   // newest timestamp, then the highest id: s06c over s06b
                                   "t06-duplicate-scores|o06-gen|s06c",
                                   "t09-bad-json|o09-gen|s09",
                                   "t11-span-only|-|s11",
                                   "t12-numeric|o12-gen|s12",
                                   "t14-correction|o14-gen|s14",
                                   "t15-correction-same|o15-gen|s15",
                                   "t16-image-input|o16-gen|s16",
                                   "t01-other-project|o01-p2|s01-p2",
                               });
  // Deleted (t07), session (s08), pending (t10) and API (t13) scores give nothing.
}

TEST_CASE("picks: all generations in start order, the root observation") {
  Fixture f;
  DatasetQuery query;
  query.source = "ANNOTATION";
  query.score_names = {"quality"};
  query.pick = ObservationPick::kAllGenerations;
  auto all = rows(f.path, query);
  REQUIRE(all.size() >= 4);
  CHECK(all[2] == "t03-tool-calls|o03-gen-1|s03");
  CHECK(all[3] == "t03-tool-calls|o03-gen-2|s03");
  query.pick = ObservationPick::kRoot;
  auto root = rows(f.path, query);
  CHECK(root[0] == "t01-string-input|o01-root|s01");
  CHECK(root[2] == "t03-tool-calls|o03-agent|s03");
}

TEST_CASE("last generation: latest start time, ties broken by the highest id") {
  TempDir dir;
  const std::string path = dir.file("ties.db");
  {
    sql::Db db = testing::open_migrated(path);
    testing::insert(db, TraceRow{"t"});
    // Inserted in an order that differs from the expected one: the API lists newest first.
    testing::insert(
        db, ObservationRow{
                .observation_id = "b", .trace_id = "t", .start_time = "2026-01-10T10:00:02.000Z"});
    testing::insert(
        db, ObservationRow{
                .observation_id = "c", .trace_id = "t", .start_time = "2026-01-10T10:00:01.000Z"});
    testing::insert(
        db, ObservationRow{
                .observation_id = "a", .trace_id = "t", .start_time = "2026-01-10T10:00:02.000Z"});
    testing::insert(db, ObservationRow{.observation_id = "z-span",
                                       .trace_id = "t",
                                       .type = "SPAN",
                                       .start_time = "2026-01-10T10:00:09.000Z"});
    testing::insert(db, ScoreRow{.score_id = "s", .trace_id = "t", .value_json = R"("Good")"});
  }
  DatasetQuery query;
  CHECK(rows(path, query) == std::vector<std::string>{"t|b|s"});
  query.pick = ObservationPick::kAllGenerations;
  CHECK(rows(path, query) == std::vector<std::string>{"t|c|s", "t|a|s", "t|b|s"});
  query.pick = ObservationPick::kRoot;  // several roots: the earliest
  CHECK(rows(path, query) == std::vector<std::string>{"t|c|s"});
}

TEST_CASE("page size and byte budget never change the rows") {
  Fixture f;
  DatasetQuery query;
  query.source = "ANNOTATION";
  query.pick = ObservationPick::kAllGenerations;
  const auto expected = rows(f.path, query);
  REQUIRE(expected.size() == 14);
  for (int traces : {1, 2, 3, 5, 1000}) {
    CAPTURE(traces);
    CHECK(rows(f.path, query, PageLimits{traces, 64u << 20}) == expected);
    CHECK(rows(f.path, query, PageLimits{traces, 1}) == expected);
  }
}

TEST_CASE("filters: names, values, source, range, time, environment") {
  Fixture f;
  DatasetQuery q;
  q.source = "ANNOTATION";

  SUBCASE("score names") {
    q.score_names = {"correct", "rating"};
    CHECK(traces(f.path, q) ==
          std::vector<std::string>{"t04-unicode", "t12-numeric", "t16-image-input"});
  }
  SUBCASE("a label; the representative is chosen among matching scores only") {
    q.values = {"Good"};
    auto selected = rows(f.path, q);
    CHECK(std::find(selected.begin(), selected.end(), "t06-duplicate-scores|o06-gen|s06b") !=
          selected.end());
  }
  SUBCASE("several values mean any of them") {
    q.values = {"Bad", "Cat."};
    CHECK(traces(f.path, q) == std::vector<std::string>{"t06-duplicate-scores", "t14-correction"});
  }
  SUBCASE("true/false match current and legacy BOOLEAN encodings") {
    q.values = {"true"};
    CHECK(traces(f.path, q) == std::vector<std::string>{"t04-unicode"});
    q.values = {"False"};
    CHECK(traces(f.path, q) == std::vector<std::string>{"t16-image-input"});
  }
  SUBCASE("a number matches value_num") {
    q.values = {"4.5"};
    CHECK(traces(f.path, q) == std::vector<std::string>{"t12-numeric"});
  }
  SUBCASE("min and max on value_num") {
    q.min_value = 1;
    CHECK(traces(f.path, q) == std::vector<std::string>{"t04-unicode", "t12-numeric"});
    q.max_value = 2;
    CHECK(traces(f.path, q) == std::vector<std::string>{"t04-unicode"});
  }
  SUBCASE("source") {
    q.source = "API";
    CHECK(traces(f.path, q) == std::vector<std::string>{"t13-api-source"});
    q.source.clear();  // any source
    CHECK(traces(f.path, q).size() == 14);
  }
  SUBCASE("since inclusive, until exclusive") {
    q.since = "2026-01-10T11:00:00.000Z";
    q.until = "2026-01-10T12:00:00.000Z";
    CHECK(traces(f.path, q) == std::vector<std::string>{"t06-duplicate-scores"});
  }
  SUBCASE("environment") {
    q.environments = {"staging"};
    CHECK(traces(f.path, q) == std::vector<std::string>{"t01-other-project"});
  }
}

TEST_CASE("preferred data types choose the representative before recency") {
  Fixture f;
  DatasetQuery q;
  q.source = "ANNOTATION";
  q.preferred_data_types = {"CORRECTION"};
  auto selected = rows(f.path, q);
  CHECK(std::find(selected.begin(), selected.end(), "t06-duplicate-scores|o06-gen|s06d") !=
        selected.end());
}

TEST_CASE("unfetched traces are counted, not returned") {
  Fixture f;
  auto reader = DatasetReader::open(f.path);
  REQUIRE(reader.ok());
  DatasetQuery q;
  q.source = "ANNOTATION";
  auto count = reader->count_unfetched_traces(q);
  REQUIRE(count.ok());
  CHECK(*count == 1);
  q.score_names = {"correct"};
  count = reader->count_unfetched_traces(q);
  REQUIRE(count.ok());
  CHECK(*count == 0);
}

TEST_CASE("the reader refuses a missing file and a file of another program") {
  TempDir dir;
  CHECK(DatasetReader::open(dir.file("missing.db")).status().kind() == ErrorKind::kIo);
  {
    auto db = sql::Db::open(dir.file("other.db"), sql::Db::Mode::kReadWrite);
    REQUIRE(db.ok());
    REQUIRE(db->exec("PRAGMA application_id = 42; CREATE TABLE x (y)").ok());
  }
  CHECK(DatasetReader::open(dir.file("other.db")).status().kind() == ErrorKind::kCorrupt);
}

TEST_CASE("reading while another connection writes: no errors, rows stay consistent") {
  TempDir dir;
  const std::string path = dir.file("busy.db");
  sql::Db writer = testing::open_migrated(path);
  for (int i = 0; i < 30; ++i) testing::insert_chat_record(writer, i);

  auto reader = DatasetReader::open(path);
  REQUIRE(reader.ok());
  DatasetQuery q;
  REQUIRE(reader->start(q, PageLimits{4, 64u << 20}).ok());
  DatasetRow row;
  int seen = 0;
  for (;;) {
    auto more = reader->next(row);
    REQUIRE(more.ok());
    if (!*more) break;
    ++seen;
    CHECK(row.has_observation);
    CHECK(row.observation_id == row.trace_id + "-gen");
    // The sync keeps writing (during the first reads): new records behind the reader's position,
    // and a write transaction left open across page boundaries.
    if (seen <= 10) testing::insert_chat_record(writer, 1000 + seen);
    if (seen == 5) REQUIRE(writer.exec("BEGIN IMMEDIATE").ok());
    if (seen == 9) REQUIRE(writer.exec("COMMIT").ok());
  }
  // Pages started later see the records added after the reader's position ("bulk-001001"...
  // sort after "bulk-000029"), each once.
  CHECK(seen == 40);
}

}  // namespace lfh
