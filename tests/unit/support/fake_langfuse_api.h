// An in-memory Langfuse for sync-engine tests: scores and observations held in vectors, paging
// with opaque cursors (offsets), newest first, and scripted failures. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "langfuse/langfuse_api.h"

namespace lfh::testing {

class FakeLangfuseApi final : public LangfuseApi {
 public:
  FakeLangfuseApi();

  // --- server data ---
  void add_score(Score s);
  void add_observation(Observation o);
  /// Changes a score's value/label keeping id and timestamp (as a UI edit does).
  void edit_score(const std::string& id, const std::string& value_json,
                  std::optional<std::string> string_value);
  void delete_score(const std::string& id);
  /// Adds a trace with `generations` generations (and a root span) plus an ANNOTATION score.
  std::string add_annotated_trace(const std::string& timestamp, const std::string& label,
                                  int generations = 1, int extra_spans = 0);

  // --- failures: the next calls to this endpoint return these statuses, in order ---
  void fail_next(const std::string& endpoint, Status status, int times = 1);
  /// Every observations call for this trace fails with status (e.g. too large while limit > 1).
  std::function<std::optional<Status>(const ObservationQuery&)> observation_fault;

  // --- counters ---
  int calls(const std::string& endpoint) const;
  std::vector<ObservationQuery> observation_queries() const;
  std::vector<ScoreQuery> score_queries() const;

  // LangfuseApi
  Result<ServerInfo> health(std::stop_token) override;
  Result<ProjectInfo> project(std::stop_token) override;
  ApiGeneration generation() const override { return ApiGeneration::kCurrent; }
  void set_generation(ApiGeneration) override {}
  Result<ScorePage> scores(const ScoreQuery& q, std::stop_token) override;
  Result<ObservationPage> observations(const ObservationQuery& q, std::stop_token) override;

 private:
  std::optional<Status> take_failure(const std::string& endpoint);
  mutable std::mutex mu_;
  std::vector<Score> scores_;
  std::vector<Observation> observations_;
  std::map<std::string, std::deque<Status>> failures_;
  std::map<std::string, int> calls_;
  std::vector<ObservationQuery> obs_queries_;
  std::vector<ScoreQuery> score_queries_;
  int next_id_ = 0;
};

}  // namespace lfh::testing
