#include "support/fake_langfuse_api.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/time_format.h"

namespace lfh::testing {

FakeLangfuseApi::FakeLangfuseApi() = default;

void FakeLangfuseApi::add_score(Score s) {
  std::lock_guard lock(mu_);
  scores_.push_back(std::move(s));
}

void FakeLangfuseApi::add_observation(Observation o) {
  std::lock_guard lock(mu_);
  observations_.push_back(std::move(o));
}

void FakeLangfuseApi::edit_score(const std::string& id, const std::string& value_json,
                                 std::optional<std::string> string_value) {
  std::lock_guard lock(mu_);
  for (auto& s : scores_) {
    if (s.id == id) {
      s.value_json = value_json;
      s.string_value = string_value;
    }
  }
}

void FakeLangfuseApi::delete_score(const std::string& id) {
  std::lock_guard lock(mu_);
  std::erase_if(scores_, [&](const Score& s) { return s.id == id; });
}

std::string FakeLangfuseApi::add_annotated_trace(const std::string& timestamp,
                                                 const std::string& label, int generations,
                                                 int extra_spans) {
  int n;
  {
    std::lock_guard lock(mu_);
    n = next_id_++;
  }
  std::string trace = fmt::format("trace-{:05d}", n);
  auto t0 = *parse_iso8601(timestamp);
  Observation root;
  root.id = trace + "-root";
  root.trace_id = trace;
  root.type = "SPAN";
  root.start_time = format_iso8601(t0 - std::chrono::seconds(100));
  add_observation(root);
  for (int g = 0; g < generations + extra_spans; ++g) {
    Observation o;
    o.id = fmt::format("{}-obs-{}", trace, g);
    o.trace_id = trace;
    o.type = g < generations ? "GENERATION" : "SPAN";
    o.parent_observation_id = root.id;
    o.start_time = format_iso8601(t0 - std::chrono::seconds(90 - g));
    o.input_json = fmt::format(R"([{{"role":"user","content":"question {} {}"}}])", n, g);
    o.output_json = fmt::format(R"({{"role":"assistant","content":"answer {} {}"}})", n, g);
    add_observation(o);
  }
  Score s;
  s.id = fmt::format("score-{:05d}", n);
  s.name = "quality";
  s.source = "ANNOTATION";
  s.data_type = "CATEGORICAL";
  s.value_json = "\"" + label + "\"";
  s.string_value = label;
  s.subject_kind = "trace";
  s.trace_id = trace;
  s.timestamp = timestamp;
  s.raw_json = "{}";
  add_score(s);
  return trace;
}

void FakeLangfuseApi::fail_next(const std::string& endpoint, Status status, int times) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < times; ++i) failures_[endpoint].push_back(status);
}

int FakeLangfuseApi::calls(const std::string& endpoint) const {
  std::lock_guard lock(mu_);
  auto it = calls_.find(endpoint);
  return it == calls_.end() ? 0 : it->second;
}

std::vector<ObservationQuery> FakeLangfuseApi::observation_queries() const {
  std::lock_guard lock(mu_);
  return obs_queries_;
}

std::vector<ScoreQuery> FakeLangfuseApi::score_queries() const {
  std::lock_guard lock(mu_);
  return score_queries_;
}

std::optional<Status> FakeLangfuseApi::take_failure(const std::string& endpoint) {
  ++calls_[endpoint];
  auto& q = failures_[endpoint];
  if (q.empty()) return std::nullopt;
  Status s = q.front();
  q.pop_front();
  return s;
}

Result<ServerInfo> FakeLangfuseApi::health(std::stop_token) {
  std::lock_guard lock(mu_);
  if (auto f = take_failure("health")) return *f;
  return ServerInfo{"4.16.0", ApiGeneration::kCurrent};
}

Result<ProjectInfo> FakeLangfuseApi::project(std::stop_token) {
  std::lock_guard lock(mu_);
  if (auto f = take_failure("projects")) return *f;
  return ProjectInfo{"proj-1", "Project One"};
}

Result<ScorePage> FakeLangfuseApi::scores(const ScoreQuery& q, std::stop_token) {
  std::lock_guard lock(mu_);
  score_queries_.push_back(q);
  if (auto f = take_failure("scores")) return *f;
  std::vector<const Score*> match;
  for (const auto& s : scores_) {
    if (q.from_timestamp && s.timestamp < *q.from_timestamp) continue;
    if (q.to_timestamp && s.timestamp >= *q.to_timestamp) continue;
    if (!q.sources.empty() &&
        std::find(q.sources.begin(), q.sources.end(), s.source) == q.sources.end()) {
      continue;
    }
    if (!q.ids.empty() && std::find(q.ids.begin(), q.ids.end(), s.id) == q.ids.end()) continue;
    match.push_back(&s);
  }
  std::sort(match.begin(), match.end(), [](const Score* a, const Score* b) {
    return a->timestamp != b->timestamp ? a->timestamp > b->timestamp : a->id > b->id;
  });
  size_t offset = q.cursor ? std::stoul(*q.cursor) : 0;
  ScorePage page;
  for (size_t i = offset; i < match.size() && i < offset + static_cast<size_t>(q.limit); ++i) {
    page.scores.push_back(*match[i]);
  }
  if (offset + static_cast<size_t>(q.limit) < match.size()) {
    page.next_cursor = std::to_string(offset + static_cast<size_t>(q.limit));
  }
  return page;
}

Result<ObservationPage> FakeLangfuseApi::observations(const ObservationQuery& q, std::stop_token) {
  std::function<std::optional<Status>(const ObservationQuery&)> fault;
  {
    std::lock_guard lock(mu_);
    obs_queries_.push_back(q);
    if (auto f = take_failure("observations")) return *f;
    fault = observation_fault;
  }
  if (fault) {
    if (auto f = fault(q)) return *f;
  }
  std::lock_guard lock(mu_);
  std::vector<const Observation*> match;
  for (const auto& o : observations_) {
    if (o.trace_id == q.trace_id) match.push_back(&o);
  }
  std::sort(match.begin(), match.end(), [](const Observation* a, const Observation* b) {
    return a->start_time > b->start_time;
  });
  size_t offset = q.cursor ? std::stoul(*q.cursor) : 0;
  ObservationPage page;
  for (size_t i = offset; i < match.size() && i < offset + static_cast<size_t>(q.limit); ++i) {
    page.observations.push_back(*match[i]);
  }
  if (offset + static_cast<size_t>(q.limit) < match.size()) {
    page.next_cursor = std::to_string(offset + static_cast<size_t>(q.limit));
  }
  return page;
}

}  // namespace lfh::testing
