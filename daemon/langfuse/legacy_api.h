// The legacy API generation (self-hosted Langfuse v2 and v3):
//   scores        GET /api/public/scores?page&limit[&fromTimestamp][&toTimestamp][&source]
//                     [&name][&environment...][&scoreIds]
//   observations  GET /api/public/observations?traceId&page&limit[&fromStartTime][&toStartTime]
// Cursors are page numbers as text (from 1); a cursor that is not one (a cursor of the other
// generation) starts the listing again from page 1.
//
// - No `fields` parameter: the v1 handler accepts one but never passes it on, so it would
//   change nothing.
// - Scores take one source and one name: with exactly one value it is sent as a filter; with
//   several, the filter is left out and scores are filtered here (score_matches). A page may
//   then hold fewer scores than asked for; the page numbers stay the server's.
// - Observations come 100 to a page whatever the caller asks, unless the caller shrank the
//   page for size (ObservationQuery::size_reduced): offset paging without a tie-breaker skips
//   and repeats rows with small pages.
// - This API never lists session, experiment or CORRECTION scores: a deletion sweep must not
//   take their absence for a deletion (sync/maintenance.cc).
// Thread-safe: no state beyond the transport.
#pragma once

#include "langfuse/api_transport.h"
#include "langfuse/langfuse_api.h"

namespace lfh {

class LegacyApi final : public LangfuseApi {
 public:
  /// `transport` must outlive the adapter.
  explicit LegacyApi(const ApiTransport& transport) : transport_(transport) {}

  Result<ServerInfo> health(std::stop_token stop) override { return transport_.health(stop); }
  Result<ProjectInfo> project(std::stop_token stop) override { return transport_.project(stop); }
  ApiGeneration generation() const override { return ApiGeneration::kLegacy; }
  void set_generation(ApiGeneration) override {}
  /// kPermanent without a request when query.ids holds more than 100 ids.
  Result<ScorePage> scores(const ScoreQuery& query, std::stop_token stop) override;
  /// kPermanent without a request when query.trace_id is empty.
  Result<ObservationPage> observations(const ObservationQuery& query,
                                       std::stop_token stop) override;

 private:
  const ApiTransport& transport_;
};

}  // namespace lfh
