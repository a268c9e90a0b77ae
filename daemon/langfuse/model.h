// Domain records lfharvest reads from Langfuse, independent of the API generation that produced
// them. Every JSON-valued field holds valid JSON text (never a parsed DOM) so records stay cheap
// to move and store.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace lfh {

enum class ApiGeneration { kUnknown, kCurrent, kLegacy };
/// "current" | "legacy" | "unknown"
const char* api_generation_name(ApiGeneration g);

struct ServerInfo {
  std::string version;  // as reported by /api/public/health; empty when the server gave none
  ApiGeneration generation = ApiGeneration::kUnknown;
};

struct ProjectInfo {
  std::string id;
  std::string name;
};

struct Score {
  std::string id;
  std::string name;
  std::string source;     // ANNOTATION | API | EVAL
  std::string data_type;  // NUMERIC | CATEGORICAL | BOOLEAN | CORRECTION | TEXT (may be empty)
  std::string value_json = "null";          // number, true/false, or string, as JSON text
  std::optional<double> value_num;          // NUMERIC value; 1/0 for BOOLEAN
  std::optional<std::string> string_value;  // label / text / correction; "True"/"False"
  std::optional<std::string> comment;
  std::string subject_kind;             // "trace", "observation", "session", "experiment", ...
  std::optional<std::string> trace_id;  // set when the score belongs to a trace
  std::optional<std::string> observation_id;
  std::optional<std::string> session_id;
  std::optional<std::string> environment;
  std::optional<std::string> config_id;
  std::optional<std::string> queue_id;
  std::optional<std::string> author_user_id;
  std::optional<std::string> metadata_json;
  std::string timestamp;  // canonical ISO 8601 (core/time_format.h)
  std::optional<std::string> created_at;
  std::optional<std::string> updated_at;
  std::string raw_json;  // the item exactly as received (re-serialized)
};

struct Observation {
  std::string id;
  std::string trace_id;
  std::string type;  // GENERATION, SPAN, EVENT, ...
  std::optional<std::string> name;
  std::optional<std::string> parent_observation_id;
  std::string start_time;  // canonical ISO 8601
  std::optional<std::string> end_time;
  std::optional<std::string> level;
  std::optional<std::string> environment;
  std::optional<std::string> model;
  std::optional<std::string> usage_json;  // usage / usageDetails / costDetails as one object
  std::optional<std::string> metadata_json;
  std::string input_json = "null";  // valid JSON; plain-text input becomes a JSON string
  std::string output_json = "null";
  std::string attributes_json = "{}";     // every other field of the item, as received
  std::optional<std::string> updated_at;  // canonical ISO 8601; the newer version of an id wins
};

/// A record the server sent that could not be turned into a domain record. The rest of the page
/// is still used.
struct RecordError {
  std::string record_id;  // id if it could be read, else "#<index in page>"
  std::string reason;
};

struct ScoreQuery {
  std::optional<std::string> from_timestamp;  // inclusive, canonical ISO 8601
  std::optional<std::string> to_timestamp;    // exclusive
  std::vector<std::string> sources;           // empty = any
  std::vector<std::string> names;
  std::vector<std::string> environments;
  std::vector<std::string> ids;       // deletion sweep: ask for exactly these ids (<= 100)
  std::optional<std::string> cursor;  // opaque; from a previous page's next_cursor
  int limit = 100;
};

struct ScorePage {
  std::vector<Score> scores;
  std::vector<RecordError> errors;
  std::optional<std::string> next_cursor;  // nullopt on the last page
  std::size_t body_bytes = 0;
  /// The server's "now" from the response's Date header (canonical ISO 8601); nullopt when the
  /// response had none or it could not be read.
  std::optional<std::string> server_time;
};

struct ObservationQuery {
  std::string trace_id;
  std::optional<std::string> cursor;
  int limit = 10;
  /// The caller shrank `limit` after a page over the response cap: use it as it is, even where
  /// the API wants bigger pages for correct paging (legacy offset paging).
  bool size_reduced = false;
  /// A time near the trace's (its first score's timestamp): when the server times out on an
  /// unbounded query, the query is narrowed to start times around it (langfuse_client.h).
  std::optional<std::string> anchor_time;
  std::optional<std::string> from_start_time;  // inclusive, canonical ISO 8601
  std::optional<std::string> to_start_time;    // exclusive
};

struct ObservationPage {
  std::vector<Observation> observations;
  std::vector<RecordError> errors;
  std::optional<std::string> next_cursor;
  std::size_t body_bytes = 0;
};

}  // namespace lfh
