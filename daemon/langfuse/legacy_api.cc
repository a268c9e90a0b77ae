#include "langfuse/legacy_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "langfuse/parse.h"

namespace lfh {
namespace {

constexpr std::string_view kScoresPath = "/api/public/scores";
constexpr std::string_view kObservationsPath = "/api/public/observations";
constexpr int kMaxPage = 100;
constexpr std::size_t kMaxIdsPerRequest = 100;

// A page-number cursor; anything else (a cursor of the other generation) starts from page 1.
int page_from_cursor(const std::optional<std::string>& cursor) {
  if (!cursor) return 1;
  int page = 0;
  const char* end = cursor->data() + cursor->size();
  auto [ptr, ec] = std::from_chars(cursor->data(), end, page);
  if (ec != std::errc() || ptr != end || page < 1) return 1;
  return page;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<ScorePage> LegacyApi::scores(const ScoreQuery& query, std::stop_token stop) {
  if (query.ids.size() > kMaxIdsPerRequest) {
    return Status::Error(ErrorKind::kPermanent,
                         fmt::format("scores: {} ids asked for in one request, at most {}",
                                     query.ids.size(), kMaxIdsPerRequest));
  }
  const int page_number = page_from_cursor(query.cursor);
  QueryString q;
  q.add("page", page_number).add("limit", std::clamp(query.limit, 1, kMaxPage));
  if (query.from_timestamp) q.add("fromTimestamp", *query.from_timestamp);
  if (query.to_timestamp) q.add("toTimestamp", *query.to_timestamp);
  if (query.sources.size() == 1) q.add("source", upper(query.sources.front()));
  if (query.names.size() == 1) q.add("name", query.names.front());
  for (const auto& environment : query.environments) q.add("environment", environment);
  q.add_list("scoreIds", query.ids);
  auto response = transport_.get(kScoresPath, q, "scores", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_scores_legacy(response->body, page_number);
  if (!page.ok()) return transport_.in_context(page.status(), kScoresPath);
  page->server_time = server_time_of(*response);
  auto& scores = page->scores;
  scores.erase(std::remove_if(scores.begin(), scores.end(),
                              [&](const Score& s) { return !score_matches(s, query); }),
               scores.end());
  return page;
}

Result<ObservationPage> LegacyApi::observations(const ObservationQuery& query,
                                                std::stop_token stop) {
  if (query.trace_id.empty()) {
    return Status::Error(ErrorKind::kPermanent, "observations: empty trace id");
  }
  const int page_number = page_from_cursor(query.cursor);
  // Small offset pages skip and repeat rows (no tie-breaker in the server's ORDER BY): always
  // the largest page, unless the caller had to shrink it for size.
  const int limit = query.size_reduced ? std::clamp(query.limit, 1, kMaxPage) : kMaxPage;
  QueryString q;
  q.add("traceId", query.trace_id).add("page", page_number).add("limit", limit);
  if (query.from_start_time) q.add("fromStartTime", *query.from_start_time);
  if (query.to_start_time) q.add("toStartTime", *query.to_start_time);
  auto response = transport_.get(kObservationsPath, q, "observations", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_observations_legacy(response->body, page_number);
  if (!page.ok()) return transport_.in_context(page.status(), kObservationsPath);
  return page;
}

}  // namespace lfh
