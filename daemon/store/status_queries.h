// What `lfharvest status` and the metrics show, read from the database alone (read-only, one
// short read transaction, safe while `lfharvest run` writes).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/server_safety.h"

namespace lfh {

struct StatusSnapshot {
  std::string db_path;
  int64_t db_bytes = 0;  // database file plus its WAL
  int64_t wal_bytes = 0;
  int schema_version = 0;

  struct Project {
    std::string id, name, base_url, server_version, api_generation, last_seen_at;
  };
  std::vector<Project> projects;

  struct ScoreGroup {
    std::string project, source, name;
    int64_t live = 0;
    int64_t deleted = 0;
  };
  std::vector<ScoreGroup> scores;

  struct TraceStates {
    int64_t pending = 0, retry = 0, done = 0, failed = 0, refetch_scheduled = 0;
    int64_t observations = 0;
    std::optional<std::string> next_retry_at;
  };
  std::map<std::string, TraceStates> traces;  // by project
  std::map<std::string, int64_t> failures_by_reason;

  struct Failure {
    std::string project, trace_id, reason, error;
  };
  std::vector<Failure> failures;  // up to 20, newest queued first

  struct Stream {
    std::string project, stream;
    std::optional<std::string> watermark, last_completed_at, pass_started_at;
    int64_t last_requests = 0, total_requests = 0;
  };
  std::vector<Stream> streams;

  struct Event {
    std::string at, level, scope, subject, message;
  };
  std::vector<Event> recent_events;  // up to 10, newest first

  int64_t edits_seen = 0;
  int64_t deletions_seen = 0;

  struct Run {
    std::string started_at;
    std::optional<std::string> finished_at, outcome;
    int64_t scores_seen = 0, traces_fetched = 0, requests = 0;
  };
  std::optional<Run> last_run;
  std::optional<std::string> last_successful_poll;  // newest poll completion of any project
  std::optional<std::string> service_json;          // meta "service": counters the service persists
  // Server safety (meta "server_safety", written by sync after each trace round).
  std::optional<ServerSafety> server_safety;
  int64_t big_traces = 0;              // traces held as big (fetched alone)
  int64_t largest_big_page_bytes = 0;  // the largest observation page a big trace returned
};

/// kIo when there is no database at the path (with a hint to run sync first).
Result<StatusSnapshot> read_status(const std::string& db_path);

}  // namespace lfh
