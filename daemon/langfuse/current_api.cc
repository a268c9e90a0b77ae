#include "langfuse/current_api.h"

#include <fmt/format.h>

#include <algorithm>

#include "langfuse/parse.h"

namespace lfh {
namespace {

constexpr std::string_view kScoresPath = "/api/public/v3/scores";
constexpr std::string_view kObservationsPath = "/api/public/v2/observations";
constexpr int kMaxScorePage = 100;
constexpr int kMaxObservationPage = 1000;
constexpr std::size_t kMaxIdsPerRequest = 100;

bool any_has_comma(const std::vector<std::string>& values) {
  return std::any_of(values.begin(), values.end(),
                     [](const std::string& v) { return v.find(',') != std::string::npos; });
}

}  // namespace

Result<ScorePage> CurrentApi::scores(const ScoreQuery& query, std::stop_token stop) {
  if (query.ids.size() > kMaxIdsPerRequest) {
    return Status::Error(ErrorKind::kPermanent,
                         fmt::format("scores: {} ids asked for in one request, at most {}",
                                     query.ids.size(), kMaxIdsPerRequest));
  }
  // The server splits `name` on commas: such a name cannot be asked for, only filtered here.
  const bool names_here = any_has_comma(query.names);
  QueryString q;
  q.add("limit", std::clamp(query.limit, 1, kMaxScorePage))
      .add_list("fields", {"details", "subject", "annotation"});
  if (query.cursor) q.add("cursor", *query.cursor);
  if (query.from_timestamp) q.add("fromTimestamp", *query.from_timestamp);
  if (query.to_timestamp) q.add("toTimestamp", *query.to_timestamp);
  q.add_list("source", query.sources)
      .add_list("name", names_here ? std::vector<std::string>{} : query.names)
      .add_list("environment", query.environments)
      .add_list("id", query.ids);
  auto response = transport_.get(kScoresPath, q, "scores", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_scores_v3(response->body, query.cursor);
  if (!page.ok()) return transport_.in_context(page.status(), kScoresPath);
  page->server_time = server_time_of(*response);
  if (names_here) {
    auto& scores = page->scores;
    scores.erase(std::remove_if(scores.begin(), scores.end(),
                                [&](const Score& s) { return !score_matches(s, query); }),
                 scores.end());
  }
  return page;
}

Result<ObservationPage> CurrentApi::observations(const ObservationQuery& query,
                                                 std::stop_token stop) {
  if (query.trace_id.empty()) {
    return Status::Error(ErrorKind::kPermanent, "observations: empty trace id");
  }
  QueryString q;
  q.add("traceId", query.trace_id)
      .add("limit", std::clamp(query.limit, 1, kMaxObservationPage))
      .add_list("fields", {"core", "basic", "time", "io", "model", "usage", "metadata"});
  if (query.from_start_time) q.add("fromStartTime", *query.from_start_time);
  if (query.to_start_time) q.add("toStartTime", *query.to_start_time);
  if (query.cursor) q.add("cursor", *query.cursor);
  auto response = transport_.get(kObservationsPath, q, "observations", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_observations_v2(response->body, query.cursor);
  if (!page.ok()) return transport_.in_context(page.status(), kObservationsPath);
  return page;
}

}  // namespace lfh
