// Hand-built checkpoint databases for the export tests: rows are inserted with plain SQL, the way
// a sync would have left them, so the export side is tested against the schema, not against the
// sync code.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "store/sqlite.h"
#include "support/temp_dir.h"

namespace lfh::testing {

struct TraceRow {
  std::string trace_id;
  std::string state = "done";
  std::string project_id = "p1";
};

struct ObservationRow {
  std::string observation_id;
  std::string trace_id;
  std::string type = "GENERATION";
  std::optional<std::string> parent = std::nullopt;
  std::string start_time;
  std::string input_json = "null";
  std::string output_json = "null";
  std::optional<std::string> model = std::nullopt;
  std::optional<std::string> usage_json = std::nullopt;
  std::optional<std::string> metadata_json = std::nullopt;
  std::string attributes_json = "{}";
  std::optional<std::string> name = std::nullopt;
  std::string project_id = "p1";
};

struct ScoreRow {
  std::string score_id;
  std::optional<std::string> trace_id = std::nullopt;
  std::string name = "quality";
  std::string data_type = "CATEGORICAL";
  std::string value_json;
  std::optional<double> value_num = std::nullopt;
  std::optional<std::string> string_value = std::nullopt;
  std::string timestamp = "2026-01-10T12:00:00.000Z";
  std::optional<std::string> observation_id = std::nullopt;
  std::optional<std::string> comment = std::nullopt;
  std::string source = "ANNOTATION";
  std::optional<std::string> environment = std::string("production");
  std::optional<std::string> deleted_at = std::nullopt;
  std::optional<std::string> session_id = std::nullopt;
  std::string project_id = "p1";
};

/// Creates (or opens) the database at path and applies every migration.
sql::Db open_migrated(const std::string& path);

void insert(sql::Db& db, const TraceRow& row);
void insert(sql::Db& db, const ObservationRow& row);
void insert(sql::Db& db, const ScoreRow& row);
/// Runs statements that must succeed (test set-up).
void exec(sql::Db& db, const std::string& sql);

/// The database the golden files are made from: string inputs, OpenAI requests and responses,
/// tool calls, Chinese and emoji, a missing output, observation- and trace-level scores,
/// duplicate scores on one trace, a deleted score, a session score, bad stored JSON, an unfetched
/// trace, a trace without generations, corrections, a second project.
void build_golden_fixture(sql::Db& db);

/// A chat generation with a CATEGORICAL "quality" score, for bulk tests: trace "bulk-NNNNNN".
void insert_chat_record(sql::Db& db, int index, const std::string& answer = "An answer.");

/// Whole file as bytes; empty when missing.
std::string read_file(const std::string& path);

}  // namespace lfh::testing
