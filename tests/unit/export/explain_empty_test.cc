// The score catalog of the golden fixture, and what an export that matched nothing says about it.
#include "export/explain_empty.h"

#include <doctest/doctest.h>

#include <string>

#include "export/export_fixture.h"
#include "store/score_catalog.h"

namespace lfh {
namespace {

using testing::TempDir;

struct Catalog {
  TempDir dir;
  std::string db = dir.file("fixture.db");
  std::vector<ScoreCatalogEntry> entries;
  Catalog() {
    {
      sql::Db handle = testing::open_migrated(db);
      testing::build_golden_fixture(handle);
    }
    auto read = read_score_catalog(db);
    REQUIRE_MESSAGE(read.ok(), read.status().to_string());
    entries = std::move(read).value();
  }
  const ScoreCatalogEntry* find(const std::string& name, const std::string& source) const {
    for (const auto& e : entries) {
      if (e.name == name && e.source == source) return &e;
    }
    return nullptr;
  }
  // Runs the export for real, then explains: the explanation sees the same summary a user does.
  std::string explain(ExportSpec spec) const {
    ExportRequest request;
    request.db_path = db;
    request.spec = std::move(spec);
    request.spec.out = dir.file("out.jsonl");
    FakeClock clock;
    auto summary = run_export(request, clock, {});
    REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
    CHECK(summary->records == 0);
    std::string text;
    for (const auto& line : explain_empty_export(request.spec, *summary, entries)) {
      text += line + "\n";
    }
    return text;
  }
};

ExportSpec spec(std::string format = "jsonl") {
  ExportSpec s;
  s.format = std::move(format);
  return s;
}

}  // namespace

TEST_CASE("the score catalog counts names, sources, types and values of trace scores") {
  Catalog c;
  const auto* quality = c.find("quality", "ANNOTATION");
  REQUIRE(quality);
  CHECK(quality->data_type == "CATEGORICAL");
  // s01..s06c, s09, s10, s11, s01-p2; not the deleted s07, the session score s08, API's s13.
  CHECK(quality->scores == 11);
  CHECK(quality->traces == 9);
  CHECK(quality->fetched_traces == 8);  // t10-pending is not fetched
  REQUIRE(quality->values.size() == 2);
  CHECK(quality->values[0].value == "Good");
  CHECK(quality->values[0].scores == 10);
  CHECK(quality->values[1].value == "Bad");
  const auto* correct = c.find("correct", "ANNOTATION");
  REQUIRE(correct);
  // Current (true) and legacy (0 / "False") booleans, spelled one way.
  REQUIRE(correct->values.size() == 2);
  CHECK(correct->values[0].value == "false");
  CHECK(correct->values[1].value == "true");
  const auto* rating = c.find("rating", "ANNOTATION");
  REQUIRE(rating);
  CHECK(rating->values.empty());
  CHECK(rating->min == 4.5);
  CHECK(c.find("quality", "API"));
}

TEST_CASE("an export that matched nothing says why and what exists") {
  Catalog c;
  SUBCASE("a misspelled name") {
    auto s = spec();
    s.score_names = {"qualty"};
    CHECK(c.explain(s) == "no score named 'qualty'; names: correct, correction, quality, rating\n");
  }
  SUBCASE("a name in the wrong case") {
    auto s = spec();
    s.score_names = {"Quality"};
    CHECK(c.explain(s).find("did you mean 'quality'?") != std::string::npos);
  }
  SUBCASE("values are case-sensitive") {
    auto s = spec();
    s.values = {"good"};
    CHECK(c.explain(s) == "no value 'good': values are case-sensitive; did you mean 'Good'?\n");
  }
  SUBCASE("two values in one") {
    auto s = spec();
    s.values = {"Good,Bad"};
    CHECK(c.explain(s) ==
          "'Good,Bad' is one value; give --value once per value (--value Good --value Bad)\n");
  }
  SUBCASE("a source without such scores") {
    auto s = spec();
    s.score_names = {"rating"};
    s.source = "eval";
    CHECK(c.explain(s) ==
          "no EVAL scores named 'rating'; sources: ANNOTATION (1) (choose with --source)\n");
  }
  SUBCASE("kto without --positive") {
    auto s = spec("kto");
    s.score_names = {"quality"};
    CHECK(c.explain(s).find("kto needs --positive VALUE to label CATEGORICAL scores (values: "
                            "Bad, Good)") != std::string::npos);
  }
  SUBCASE("a preference format without corrections among the selected scores") {
    auto s = spec("trl-dpo");
    s.score_names = {"quality"};
    CHECK(c.explain(s).find("trl-dpo needs CORRECTION scores; names with that type: correction") !=
          std::string::npos);
  }
  SUBCASE("filters that exclude everything together") {
    auto s = spec();
    s.since = "2030-01-01T00:00:00.000Z";
    CHECK(c.explain(s).find("no score matches all the filters together") != std::string::npos);
  }
}

}  // namespace lfh
