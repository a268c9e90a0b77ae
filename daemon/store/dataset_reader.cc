#include "store/dataset_reader.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "store/schema.h"

namespace lfh {

struct DatasetReader::ScoreRow {
  std::string project_id;
  std::string trace_id;
  std::string score_id;
  std::string name;
  std::string source;
  std::optional<std::string> data_type;
  std::string value_json;
  std::optional<double> value_num;
  std::optional<std::string> string_value;
  std::optional<std::string> comment;
  std::string timestamp;
  std::optional<std::string> environment;
  std::optional<std::string> observation_id;
};

namespace {

// How one --value is matched. Labels can look like numbers ("5" as a category), so a number also
// matches the string forms.
enum class ValueKind { kBoolean, kNumber, kLabel };

ValueKind classify_value(const std::string& v, bool& boolean, double& number) {
  std::string lower;
  for (char c : v) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "true" || lower == "false") {
    boolean = lower == "true";
    return ValueKind::kBoolean;
  }
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, number);
  if (!v.empty() && ec == std::errc() && ptr == end && std::isfinite(number)) {
    return ValueKind::kNumber;
  }
  return ValueKind::kLabel;
}

std::string json_string(const std::string& v) {
  return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string in_list(std::string_view column, std::string_view prefix, std::size_t n) {
  std::string out = fmt::format("{} IN (", column);
  for (std::size_t i = 0; i < n; ++i) out += fmt::format("{}:{}{}", i ? ", " : "", prefix, i);
  return out + ")";
}

// The conditions a score must meet, on table alias `a`. Parameter names do not depend on the
// alias, so the same filter can appear twice in one statement and be bound once. Every column is
// written as +a.column so that no filter can steer the planner away from scores_by_trace: without
// statistics it would pick scores_by_timestamp or scores_by_name and scan a whole project's scores
// once per trace.
std::string score_filter(const DatasetQuery& q, std::string_view a) {
  std::string sql = fmt::format("+{0}.deleted_at IS NULL AND +{0}.trace_id IS NOT NULL", a);
  if (!q.source.empty()) sql += fmt::format(" AND +{}.source = :source", a);
  if (!q.score_names.empty()) {
    sql += " AND " + in_list(fmt::format("+{}.name", a), "name", q.score_names.size());
  }
  if (!q.values.empty()) {
    sql += " AND (";
    for (std::size_t i = 0; i < q.values.size(); ++i) {
      bool boolean = false;
      double number = 0;
      if (i) sql += " OR ";
      switch (classify_value(q.values[i], boolean, number)) {
        case ValueKind::kBoolean:
          // Current API: value true/false. Legacy API: value 1/0 and stringValue "True"/"False".
          sql += fmt::format(
              "(+{0}.value_json = :vj{1} OR (+{0}.data_type = 'BOOLEAN' AND (+{0}.value_num = "
              ":vn{1} "
              "OR lower({0}.string_value) = :vj{1})))",
              a, i);
          break;
        case ValueKind::kNumber:
          sql += fmt::format(
              "(+{0}.value_num = :vn{1} OR +{0}.string_value = :v{1} OR +{0}.value_json = :vj{1})",
              a, i);
          break;
        case ValueKind::kLabel:
          sql += fmt::format("(+{0}.string_value = :v{1} OR +{0}.value_json = :vj{1})", a, i);
          break;
      }
    }
    sql += ")";
  }
  if (q.min_value) sql += fmt::format(" AND +{}.value_num >= :min_value", a);
  if (q.max_value) sql += fmt::format(" AND +{}.value_num <= :max_value", a);
  if (q.since) sql += fmt::format(" AND +{}.timestamp >= :since", a);
  if (q.until) sql += fmt::format(" AND +{}.timestamp < :until", a);
  if (!q.environments.empty()) {
    sql += " AND " + in_list(fmt::format("+{}.environment", a), "env", q.environments.size());
  }
  return sql;
}

void bind_filter(sql::Stmt& stmt, const DatasetQuery& q) {
  if (!q.source.empty()) stmt.bind(":source", q.source);
  for (std::size_t i = 0; i < q.score_names.size(); ++i) {
    stmt.bind(fmt::format(":name{}", i).c_str(), q.score_names[i]);
  }
  for (std::size_t i = 0; i < q.values.size(); ++i) {
    bool boolean = false;
    double number = 0;
    switch (classify_value(q.values[i], boolean, number)) {
      case ValueKind::kBoolean:
        stmt.bind(fmt::format(":vj{}", i).c_str(), boolean ? "true" : "false");
        stmt.bind(fmt::format(":vn{}", i).c_str(), boolean ? 1.0 : 0.0);
        break;
      case ValueKind::kNumber:
        stmt.bind(fmt::format(":vn{}", i).c_str(), number);
        stmt.bind(fmt::format(":v{}", i).c_str(), q.values[i]);
        stmt.bind(fmt::format(":vj{}", i).c_str(), json_string(q.values[i]));
        break;
      case ValueKind::kLabel:
        stmt.bind(fmt::format(":v{}", i).c_str(), q.values[i]);
        stmt.bind(fmt::format(":vj{}", i).c_str(), json_string(q.values[i]));
        break;
    }
  }
  if (q.min_value) stmt.bind(":min_value", *q.min_value);
  if (q.max_value) stmt.bind(":max_value", *q.max_value);
  if (q.since) stmt.bind(":since", *q.since);
  if (q.until) stmt.bind(":until", *q.until);
  for (std::size_t i = 0; i < q.environments.size(); ++i) {
    stmt.bind(fmt::format(":env{}", i).c_str(), q.environments[i]);
  }
}

void bind_preferred(sql::Stmt& stmt, const DatasetQuery& q) {
  for (std::size_t i = 0; i < q.preferred_data_types.size(); ++i) {
    stmt.bind(fmt::format(":pref{}", i).c_str(), q.preferred_data_types[i]);
  }
}

constexpr const char* kTraceDone =
    "EXISTS (SELECT 1 FROM traces t WHERE t.project_id = s.project_id "
    "AND t.trace_id = s.trace_id AND t.state = 'done')";

// One page of traces with a matching score, each with its representative score. The page walks
// scores_by_trace in key order and stops after :page_size traces, so a page costs about its own
// size whatever the position. The representative's ORDER BY uses +column for the same reason as
// score_filter(): ordering by a bare timestamp makes the planner walk scores_by_timestamp.
std::string page_sql(const DatasetQuery& q, bool after_key) {
  std::string preference;
  if (!q.preferred_data_types.empty()) {
    preference = fmt::format("CASE WHEN {} THEN 0 ELSE 1 END, ",
                             in_list("s2.data_type", "pref", q.preferred_data_types.size()));
  }
  return fmt::format(
      "WITH page AS ("
      " SELECT s.project_id, s.trace_id FROM scores s"
      " WHERE {0}{1} AND {2}"
      " GROUP BY s.project_id, s.trace_id"
      " ORDER BY s.project_id, s.trace_id"
      " LIMIT :page_size) "
      "SELECT r.project_id, r.trace_id, r.score_id, r.name, r.source, r.data_type, r.value_json,"
      " r.value_num, r.string_value, r.comment, r.timestamp, r.environment, r.observation_id "
      "FROM page p JOIN scores r ON r.rowid = ("
      " SELECT s2.rowid FROM scores s2"
      " WHERE s2.project_id = p.project_id AND s2.trace_id = p.trace_id AND {3}"
      " ORDER BY {4}+s2.timestamp DESC, +s2.score_id DESC LIMIT 1) "
      "ORDER BY p.project_id, p.trace_id",
      score_filter(q, "s"),
      after_key ? " AND (s.project_id, s.trace_id) > (:after_project, :after_trace)" : "",
      kTraceDone, score_filter(q, "s2"), preference);
}

const char* pick_sql(ObservationPick pick) {
  switch (pick) {
    case ObservationPick::kLastGeneration:
      return "SELECT observation_id FROM observations"
             " WHERE project_id = :project AND trace_id = :trace AND type = 'GENERATION'"
             " ORDER BY start_time DESC, observation_id DESC LIMIT 1";
    case ObservationPick::kAllGenerations:
      return "SELECT observation_id FROM observations"
             " WHERE project_id = :project AND trace_id = :trace AND type = 'GENERATION'"
             " ORDER BY start_time, observation_id";
    case ObservationPick::kRoot:
      return "SELECT observation_id FROM observations"
             " WHERE project_id = :project AND trace_id = :trace"
             " AND parent_observation_id IS NULL"
             " ORDER BY start_time, observation_id LIMIT 1";
  }
  return "";
}

constexpr const char* kObservationSql =
    "SELECT type, name, start_time, end_time, model, usage_json, metadata_json, input_json,"
    " output_json, attributes_json FROM observations"
    " WHERE project_id = :project AND observation_id = :id";

std::size_t opt_size(const std::optional<std::string>& s) {
  return s ? s->size() : 0;
}

void assign_opt(std::optional<std::string>& out, sql::Stmt& stmt, int col) {
  if (stmt.is_null(col)) {
    out.reset();
  } else if (out) {
    out->assign(stmt.text_view(col));
  } else {
    out.emplace(stmt.text_view(col));
  }
}

}  // namespace

std::size_t DatasetRow::payload_bytes() const {
  return input_json.size() + output_json.size() + attributes_json.size() + opt_size(usage_json) +
         opt_size(metadata_json) + opt_size(score_comment) + score_value_json.size();
}

DatasetReader::DatasetReader(std::unique_ptr<sql::Db> db) : db_(std::move(db)) {}
DatasetReader::DatasetReader(DatasetReader&&) noexcept = default;
DatasetReader& DatasetReader::operator=(DatasetReader&&) noexcept = default;

DatasetReader::~DatasetReader() {
  if (db_ && in_transaction_) (void)end_page();
}

Result<DatasetReader> DatasetReader::open(const std::string& path) {
  auto db = sql::Db::open(path, sql::Db::Mode::kReadOnly);
  if (!db.ok()) return db.status();
  DatasetReader reader(std::make_unique<sql::Db>(std::move(db).value()));
  // Reading the schema version also proves the file is a database (kCorrupt otherwise).
  if (auto v = reader.schema_version(); !v.ok()) return v.status();
  return reader;
}

Result<int> DatasetReader::schema_version() {
  return lfh::schema_version(*db_);
}

Result<std::size_t> DatasetReader::count_unfetched_traces(const DatasetQuery& query) {
  std::string sql = fmt::format(
      "SELECT count(*) FROM (SELECT DISTINCT s.project_id, s.trace_id FROM scores s"
      " WHERE {} AND NOT {})",
      score_filter(query, "s"), kTraceDone);
  auto stmt = db_->prepare(sql);
  if (!stmt.ok()) return stmt.status();
  bind_filter(*stmt, query);
  auto row = stmt->step();
  if (!row.ok()) return row.status();
  return static_cast<std::size_t>(*row ? stmt->int64(0) : 0);
}

Status DatasetReader::start(const DatasetQuery& query, PageLimits limits) {
  if (in_transaction_) {
    if (Status s = end_page(); !s.ok()) return s;
  }
  query_ = query;
  limits_ = limits;
  if (limits_.traces < 1) limits_.traces = 1;
  auto first = db_->prepare(page_sql(query_, false));
  if (!first.ok()) return first.status();
  auto next = db_->prepare(page_sql(query_, true));
  if (!next.ok()) return next.status();
  auto pick = db_->prepare(pick_sql(query_.pick));
  if (!pick.ok()) return pick.status();
  auto observation = db_->prepare(kObservationSql);
  if (!observation.ok()) return observation.status();
  first_page_stmt_ = std::move(first).value();
  next_page_stmt_ = std::move(next).value();
  pick_stmt_ = std::move(pick).value();
  observation_stmt_ = std::move(observation).value();
  started_ = true;
  exhausted_ = false;
  page_full_ = false;
  after_key_.reset();
  page_.clear();
  page_index_ = 0;
  page_bytes_ = 0;
  observation_ids_.clear();
  observation_index_ = 0;
  current_ = nullptr;
  return Status::Ok();
}

// A deferred BEGIN on the read-only connection: the snapshot starts at the first read and lasts
// until end_page(), so a page's scores and the observations read for them agree.
Status DatasetReader::load_page() {
  if (Status s = db_->exec("BEGIN"); !s.ok()) return s;
  in_transaction_ = true;
  page_bytes_ = 0;
  page_.clear();
  page_index_ = 0;
  sql::Stmt& stmt = after_key_ ? next_page_stmt_ : first_page_stmt_;
  stmt.reset();
  bind_filter(stmt, query_);
  bind_preferred(stmt, query_);
  stmt.bind(":page_size", limits_.traces);
  if (after_key_) {
    stmt.bind(":after_project", after_key_->first);
    stmt.bind(":after_trace", after_key_->second);
  }
  for (;;) {
    auto more = stmt.step();
    if (!more.ok()) {
      stmt.reset();
      return more.status();
    }
    if (!*more) break;
    ScoreRow& r = page_.emplace_back();
    r.project_id = stmt.text(0);
    r.trace_id = stmt.text(1);
    r.score_id = stmt.text(2);
    r.name = stmt.text(3);
    r.source = stmt.text(4);
    r.data_type = stmt.opt_text(5);
    r.value_json = stmt.text(6);
    r.value_num = stmt.opt_real(7);
    r.string_value = stmt.opt_text(8);
    r.comment = stmt.opt_text(9);
    r.timestamp = stmt.text(10);
    r.environment = stmt.opt_text(11);
    r.observation_id = stmt.opt_text(12);
  }
  stmt.reset();
  page_full_ = page_.size() >= static_cast<std::size_t>(limits_.traces);
  return Status::Ok();
}

Status DatasetReader::end_page() {
  pick_stmt_.reset();
  observation_stmt_.reset();
  if (hash_stmt_) hash_stmt_->reset();
  in_transaction_ = false;
  return db_->exec("COMMIT");
}

Status DatasetReader::load_observation_ids(const ScoreRow& score) {
  observation_ids_.clear();
  observation_index_ = 0;
  pick_stmt_.reset();
  pick_stmt_.bind(":project", score.project_id).bind(":trace", score.trace_id);
  for (;;) {
    auto more = pick_stmt_.step();
    if (!more.ok()) {
      pick_stmt_.reset();
      return more.status();
    }
    if (!*more) break;
    observation_ids_.push_back(pick_stmt_.text(0));
  }
  pick_stmt_.reset();
  return Status::Ok();
}

Result<bool> DatasetReader::read_observation(const std::string& project_id, const std::string& id,
                                             DatasetRow& row) {
  observation_stmt_.reset();
  observation_stmt_.bind(":project", project_id).bind(":id", id);
  auto found = observation_stmt_.step();
  if (!found.ok() || !*found) {
    observation_stmt_.reset();
    return found;
  }
  row.has_observation = true;
  row.observation_id = id;
  row.observation_type.assign(observation_stmt_.text_view(0));
  assign_opt(row.observation_name, observation_stmt_, 1);
  row.start_time.assign(observation_stmt_.text_view(2));
  assign_opt(row.end_time, observation_stmt_, 3);
  assign_opt(row.model, observation_stmt_, 4);
  assign_opt(row.usage_json, observation_stmt_, 5);
  assign_opt(row.metadata_json, observation_stmt_, 6);
  row.input_json.assign(observation_stmt_.text_view(7));
  row.output_json.assign(observation_stmt_.text_view(8));
  row.attributes_json.assign(observation_stmt_.text_view(9));
  observation_stmt_.reset();
  return true;
}

namespace {

void clear_observation(DatasetRow& row) {
  row.has_observation = false;
  row.observation_id.clear();
  row.observation_type.clear();
  row.observation_name.reset();
  row.start_time.clear();
  row.end_time.reset();
  row.model.reset();
  row.usage_json.reset();
  row.metadata_json.reset();
  row.input_json.clear();
  row.output_json.clear();
  row.attributes_json.clear();
}

}  // namespace

Result<bool> DatasetReader::next(DatasetRow& row) {
  if (!started_) return Status::Error(ErrorKind::kFatal, "DatasetReader::next before start");
  auto fill_from_current = [&] {
    const ScoreRow& s = *current_;
    row.project_id = s.project_id;
    row.trace_id = s.trace_id;
    row.score_id = s.score_id;
    row.score_name = s.name;
    row.score_source = s.source;
    row.score_data_type = s.data_type;
    row.score_value_json = s.value_json;
    row.score_value_num = s.value_num;
    row.score_string_value = s.string_value;
    row.score_comment = s.comment;
    row.score_timestamp = s.timestamp;
    row.score_environment = s.environment;
    row.score_observation_id = s.observation_id;
  };
  for (;;) {
    if (current_ && observation_index_ < observation_ids_.size()) {
      const std::string& id = observation_ids_[observation_index_++];
      fill_from_current();
      auto found = read_observation(current_->project_id, id, row);
      if (!found.ok()) return found.status();
      if (!*found) continue;  // cannot happen inside one snapshot; skip rather than fail
      page_bytes_ += row.payload_bytes();
      return true;
    }
    if (current_) {
      // The current trace is finished: it is the key the next page starts after.
      after_key_.emplace(current_->project_id, current_->trace_id);
      current_ = nullptr;
      if (page_bytes_ >= limits_.bytes && page_index_ < page_.size()) {
        // Keep read transactions short: drop the rest of this page and re-read from here.
        page_.clear();
        page_index_ = 0;
        page_full_ = true;
      }
    }
    if (page_index_ < page_.size()) {
      current_ = &page_[page_index_++];
      if (Status s = load_observation_ids(*current_); !s.ok()) return s;
      if (observation_ids_.empty()) {
        // The pick found nothing: one row without an observation, so the caller can count it.
        fill_from_current();
        clear_observation(row);
        return true;
      }
      continue;
    }
    if (in_transaction_) {
      if (Status s = end_page(); !s.ok()) return s;
      if (!page_full_) exhausted_ = true;
    }
    if (exhausted_) return false;
    if (Status s = load_page(); !s.ok()) {
      (void)end_page();
      return s;
    }
    if (page_.empty()) {
      if (Status s = end_page(); !s.ok()) return s;
      exhausted_ = true;
      return false;
    }
  }
}

Result<std::optional<std::string>> DatasetReader::exported_record_hash(
    std::string_view export_name, std::string_view record_key) {
  if (!hash_stmt_) {
    auto stmt = db_->prepare(
        "SELECT content_sha256 FROM export_records WHERE export_name = :name AND record_key = "
        ":key");
    if (!stmt.ok()) return stmt.status();
    hash_stmt_.emplace(std::move(stmt).value());
  }
  sql::Stmt& stmt = *hash_stmt_;
  stmt.reset();
  stmt.bind(":name", export_name).bind(":key", record_key);
  auto found = stmt.step();
  if (!found.ok()) {
    stmt.reset();
    return found.status();
  }
  std::optional<std::string> hash;
  if (*found) hash = stmt.text(0);
  stmt.reset();
  return hash;
}

Result<ExportStateStore> ExportStateStore::open(const std::string& path) {
  auto db = sql::Db::open(path, sql::Db::Mode::kReadWrite);
  if (!db.ok()) return db.status();
  if (Status s = migrate(*db); !s.ok()) return s;
  return ExportStateStore(std::move(db).value());
}

Result<std::int64_t> ExportStateStore::begin_run(std::string_view export_name,
                                                 std::string_view format, std::string_view pick,
                                                 bool incremental, std::string_view started_at) {
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  auto drop = db_.prepare(
      "DELETE FROM export_pending WHERE run_id IN"
      " (SELECT id FROM export_runs WHERE export_name = :name AND finished_at IS NULL)");
  if (!drop.ok()) return drop.status();
  if (Status s = drop->bind(":name", export_name).run(); !s.ok()) return s;
  auto insert = db_.prepare(
      "INSERT INTO export_runs (export_name, format, pick, incremental, started_at)"
      " VALUES (:name, :format, :pick, :incremental, :started_at) RETURNING id");
  if (!insert.ok()) return insert.status();
  insert->bind(":name", export_name)
      .bind(":format", format)
      .bind(":pick", pick)
      .bind(":incremental", incremental)
      .bind(":started_at", started_at);
  auto row = insert->step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Error(ErrorKind::kFatal, "insert export_runs returned no id");
  const std::int64_t run_id = insert->int64(0);
  insert->reset();
  if (Status s = tx.commit(); !s.ok()) return s;
  return run_id;
}

Status ExportStateStore::add_pending(std::int64_t run_id,
                                     const std::vector<ExportedRecord>& records) {
  if (records.empty()) return Status::Ok();
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  auto insert = db_.prepare(
      "INSERT OR REPLACE INTO export_pending (run_id, record_key, content_sha256)"
      " VALUES (:run, :key, :sha)");
  if (!insert.ok()) return insert.status();
  for (const ExportedRecord& r : records) {
    insert->bind(":run", run_id).bind(":key", r.key).bind(":sha", r.sha256);
    if (Status s = insert->run(); !s.ok()) return s;
  }
  return tx.commit();
}

Status ExportStateStore::finish_run(std::int64_t run_id, std::string_view export_name,
                                    std::string_view finished_at, const ExportRunTotals& totals) {
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  auto merge = db_.prepare(
      "INSERT INTO export_records (export_name, record_key, content_sha256, first_exported_at,"
      " last_exported_at, last_run_id)"
      " SELECT :name, record_key, content_sha256, :at, :at, run_id FROM export_pending"
      " WHERE run_id = :run"
      " ON CONFLICT (export_name, record_key) DO UPDATE SET"
      " content_sha256 = excluded.content_sha256, last_exported_at = excluded.last_exported_at,"
      " last_run_id = excluded.last_run_id");
  if (!merge.ok()) return merge.status();
  merge->bind(":name", export_name).bind(":at", finished_at).bind(":run", run_id);
  if (Status s = merge->run(); !s.ok()) return s;
  auto drop = db_.prepare("DELETE FROM export_pending WHERE run_id = :run");
  if (!drop.ok()) return drop.status();
  if (Status s = drop->bind(":run", run_id).run(); !s.ok()) return s;
  auto update = db_.prepare(
      "UPDATE export_runs SET finished_at = :at, records = :records, unchanged = :unchanged,"
      " skipped = :skipped, bytes = :bytes, out_path = :out_path, sha256 = :sha256"
      " WHERE id = :run");
  if (!update.ok()) return update.status();
  update->bind(":at", finished_at)
      .bind(":records", static_cast<std::int64_t>(totals.records))
      .bind(":unchanged", static_cast<std::int64_t>(totals.unchanged))
      .bind(":skipped", static_cast<std::int64_t>(totals.skipped))
      .bind(":bytes", static_cast<std::int64_t>(totals.bytes))
      .bind(":out_path", totals.out_path)
      .bind(":sha256", totals.sha256)
      .bind(":run", run_id);
  if (Status s = update->run(); !s.ok()) return s;
  return tx.commit();
}

}  // namespace lfh
