// The export side's SQL: reads scored traces and their observations for `lfharvest export`, and
// keeps the state of named exports (schema/0002_exports.sql).
//
// DatasetReader opens the database read-only and reads it in pages of traces ordered by
// (project_id, trace_id). Each page is one short read transaction, so an export of any size never
// pins the WAL for long while `lfharvest run` writes; a page also ends early once it has produced
// a budget of bytes of row data (PageLimits). Every record is read from one consistent snapshot;
// two pages may see different snapshots (a record changed by a concurrent sync appears either as it
// was or as it is, never half of each). On a database nobody writes to, the same query gives the
// same rows in the same order.
//
// ExportStateStore is the short read-write side used by named exports. Both classes are used by
// one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "store/sqlite.h"

namespace lfh {

/// Which observation(s) of a scored trace a record holds.
enum class ObservationPick {
  kLastGeneration,  // the GENERATION with the latest start_time (ties: highest observation_id)
  kAllGenerations,  // every GENERATION, by start_time then observation_id
  kRoot,            // the observation without a parent (several: earliest start, lowest id)
};

/// Selects the scores whose traces become records. Empty lists and unset optionals match all.
struct DatasetQuery {
  std::vector<std::string> score_names;
  /// Any of these: "true"/"false" (BOOLEAN scores), a number (value_num, or a label spelled that
  /// way), or a label (string value).
  std::vector<std::string> values;
  std::string source;               // ANNOTATION | API | EVAL; empty = any
  std::optional<double> min_value;  // inclusive, on value_num
  std::optional<double> max_value;
  std::optional<std::string> since;       // inclusive, canonical ISO 8601, on the score timestamp
  std::optional<std::string> until;       // exclusive
  std::vector<std::string> environments;  // score environment
  ObservationPick pick = ObservationPick::kLastGeneration;
  /// When a trace has several matching scores, the representative is the first by: data type in
  /// this list (when not empty), then newest timestamp, then highest score_id.
  std::vector<std::string> preferred_data_types;
};

/// One record candidate: the trace's representative score and one picked observation.
struct DatasetRow {
  std::string project_id;
  std::string trace_id;

  std::string score_id;
  std::string score_name;
  std::string score_source;
  std::optional<std::string> score_data_type;
  std::string score_value_json;
  std::optional<double> score_value_num;
  std::optional<std::string> score_string_value;
  std::optional<std::string> score_comment;
  std::string score_timestamp;
  std::optional<std::string> score_environment;
  std::optional<std::string> score_observation_id;  // set for observation-level scores

  bool has_observation = false;  // false when the pick found nothing in this trace
  std::string observation_id;
  std::string observation_type;
  std::optional<std::string> observation_name;
  std::string start_time;
  std::optional<std::string> end_time;
  std::optional<std::string> model;
  std::optional<std::string> usage_json;
  std::optional<std::string> metadata_json;
  std::string input_json;
  std::string output_json;
  std::string attributes_json;

  /// Bytes of text held (for the page budget and progress).
  std::size_t payload_bytes() const;
};

/// How much one read transaction covers.
struct PageLimits {
  int traces = 256;               // a page holds at most this many traces...
  std::size_t bytes = 64u << 20;  // ...and ends at the next trace boundary after this many bytes
};

class DatasetReader {
 public:
  /// Opens the file read-only. kIo when it cannot be opened; kCorrupt when it is not an lfharvest
  /// database.
  static Result<DatasetReader> open(const std::string& path);

  /// PRAGMA user_version of the file (0 for an empty file).
  Result<int> schema_version();

  /// Number of distinct traces with a matching score whose observations are not fetched yet
  /// (state other than done): they give no record now.
  Result<std::size_t> count_unfetched_traces(const DatasetQuery& query);

  /// Starts (or restarts) the iteration. The query is copied. The limits change only how often
  /// a new read transaction starts, never the rows.
  Status start(const DatasetQuery& query, PageLimits limits = {});

  /// Fills row with the next record candidate: true, or false when there are no more. Rows come
  /// ordered by (project_id, trace_id), then by the pick's observation order. Errors end the
  /// iteration.
  Result<bool> next(DatasetRow& row);

  /// The content hash a named export last wrote for record_key, nullopt when never. Needs schema
  /// version 2.
  Result<std::optional<std::string>> exported_record_hash(std::string_view export_name,
                                                          std::string_view record_key);

  DatasetReader(DatasetReader&&) noexcept;
  DatasetReader& operator=(DatasetReader&&) noexcept;
  ~DatasetReader();

 private:
  struct ScoreRow;
  explicit DatasetReader(std::unique_ptr<sql::Db> db);
  Status load_page();
  Status end_page();
  Status load_observation_ids(const ScoreRow& score);
  Result<bool> read_observation(const std::string& project_id, const std::string& id,
                                DatasetRow& row);

  std::unique_ptr<sql::Db> db_;  // heap: statements keep its address across moves
  DatasetQuery query_;
  PageLimits limits_;
  bool started_ = false;
  bool in_transaction_ = false;
  bool exhausted_ = false;  // the last page was short: nothing after it
  bool page_full_ = false;  // the current page holds limits_.traces traces: more may follow
  std::optional<std::pair<std::string, std::string>> after_key_;  // last finished trace
  std::vector<ScoreRow> page_;
  std::size_t page_index_ = 0;  // next score in page_
  std::size_t page_bytes_ = 0;
  std::vector<std::string> observation_ids_;  // picked ids of the current trace
  std::size_t observation_index_ = 0;
  const ScoreRow* current_ = nullptr;
  sql::Stmt first_page_stmt_;
  sql::Stmt next_page_stmt_;
  sql::Stmt pick_stmt_;
  sql::Stmt observation_stmt_;
  std::optional<sql::Stmt> hash_stmt_;  // prepared on first use (needs schema version 2)
};

/// A record a named export wrote in this run: its key and the SHA-256 (hex) of its bytes.
struct ExportedRecord {
  std::string key;
  std::string sha256;
};

/// What a finished run reports into export_runs.
struct ExportRunTotals {
  std::size_t records = 0;
  std::size_t unchanged = 0;
  std::size_t skipped = 0;
  std::uint64_t bytes = 0;
  std::string out_path;
  std::string sha256;
};

/// The read-write side of named exports. Each call is one short BEGIN IMMEDIATE transaction.
class ExportStateStore {
 public:
  /// Opens read-write and brings the schema to the latest version (migrate()).
  static Result<ExportStateStore> open(const std::string& path);

  /// Records a new run (finished_at NULL) and deletes the pending rows of earlier unfinished runs
  /// of the same export (killed runs). Returns the run id.
  Result<std::int64_t> begin_run(std::string_view export_name, std::string_view format,
                                 std::string_view pick, bool incremental,
                                 std::string_view started_at);

  /// Stores records written by the run; they count only once finish_run() commits.
  Status add_pending(std::int64_t run_id, const std::vector<ExportedRecord>& records);

  /// In one transaction: moves the run's pending records into export_records and marks the run
  /// finished with its totals.
  Status finish_run(std::int64_t run_id, std::string_view export_name, std::string_view finished_at,
                    const ExportRunTotals& totals);

 private:
  explicit ExportStateStore(sql::Db db) : db_(std::move(db)) {}
  sql::Db db_;
};

}  // namespace lfh
