#include "store/score_catalog.h"

#include <fmt/format.h>

#include <map>
#include <tuple>

#include "store/schema.h"
#include "store/sqlite.h"

namespace lfh {
namespace {

// Two statements over the same read transaction, so the counts and values agree.
constexpr const char* kEntriesSql =
    "SELECT s.name, s.source, coalesce(s.data_type, ''), count(*),"
    " count(DISTINCT s.project_id || char(31) || s.trace_id),"
    " count(DISTINCT CASE WHEN t.state = 'done' THEN s.project_id || char(31) || s.trace_id END),"
    " min(s.value_num), max(s.value_num)"
    " FROM scores s LEFT JOIN traces t ON t.project_id = s.project_id AND t.trace_id = s.trace_id"
    " WHERE s.deleted_at IS NULL AND s.trace_id IS NOT NULL"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

// Legacy BOOLEAN scores are 1/0 with "True"/"False"; current ones true/false.
constexpr const char* kValuesSql =
    "SELECT name, source, data_type,"
    " CASE WHEN data_type = 'BOOLEAN' THEN"
    "   CASE WHEN value_json IN ('true', '1') OR lower(string_value) = 'true' THEN 'true'"
    "   ELSE 'false' END"
    " ELSE coalesce(string_value, value_json) END AS v,"
    " count(*) AS n"
    " FROM scores WHERE deleted_at IS NULL AND trace_id IS NOT NULL"
    " AND data_type IN ('CATEGORICAL', 'BOOLEAN')"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 5 DESC, 4";

}  // namespace

Result<std::vector<ScoreCatalogEntry>> read_score_catalog(const std::string& db_path) {
  auto db = sql::Db::open(db_path, sql::Db::Mode::kReadOnly);
  if (!db.ok()) return db.status();
  auto version = schema_version(*db);
  if (!version.ok()) return version.status();
  if (*version == 0) {
    return Status::Error(ErrorKind::kCorrupt,
                         fmt::format("{}: not an lfharvest database (no schema); run "
                                     "`lfharvest sync` first",
                                     db_path));
  }
  if (Status s = db->exec("BEGIN"); !s.ok()) return s;
  std::vector<ScoreCatalogEntry> entries;
  std::map<std::tuple<std::string, std::string, std::string>, std::size_t> index;
  {
    auto stmt = db->prepare(kEntriesSql);
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ScoreCatalogEntry e;
      e.name = stmt->text(0);
      e.source = stmt->text(1);
      e.data_type = stmt->text(2);
      e.scores = static_cast<std::size_t>(stmt->int64(3));
      e.traces = static_cast<std::size_t>(stmt->int64(4));
      e.fetched_traces = static_cast<std::size_t>(stmt->int64(5));
      if (!stmt->is_null(6)) e.min = stmt->real(6);
      if (!stmt->is_null(7)) e.max = stmt->real(7);
      index[{e.name, e.source, e.data_type}] = entries.size();
      entries.push_back(std::move(e));
    }
  }
  {
    auto stmt = db->prepare(kValuesSql);
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto it = index.find({stmt->text(0), stmt->text(1), stmt->text(2)});
      if (it == index.end()) continue;
      entries[it->second].values.push_back(
          {stmt->text(3), static_cast<std::size_t>(stmt->int64(4))});
    }
  }
  (void)db->exec("COMMIT");
  return entries;
}

}  // namespace lfh
