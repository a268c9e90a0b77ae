// The current API generation (Langfuse v4, Cloud; v3 scores since 3.180, v2 observations since
// 3.159):
//   scores        GET /api/public/v3/scores?limit&fields=details,subject,annotation
//                     [&cursor][&fromTimestamp][&toTimestamp][&source][&name][&environment][&id]
//   observations  GET /api/public/v2/observations?traceId&limit
//                     &fields=core,basic,time,io,model,usage,metadata[&fromStartTime]
//                     [&toStartTime][&cursor]
// The v3 scores endpoint rejects unknown parameters, so only those above are ever sent. Page
// sizes are clamped to what each endpoint accepts (scores 1..100, observations 1..1000). Every
// value is percent-encoded; credentials travel only as Basic auth.
//
// v3 splits `name` on commas after decoding: when a wanted name holds a comma the name filter is
// left out and scores are filtered here (the page then may hold fewer scores than asked for;
// the server's cursor is kept, so paging is unaffected). The `time` group brings updatedAt, which
// picks the newer of two versions of an observation the server returns twice.
// Thread-safe: no state beyond the transport.
#pragma once

#include "langfuse/api_transport.h"
#include "langfuse/langfuse_api.h"

namespace lfh {

class CurrentApi final : public LangfuseApi {
 public:
  /// `transport` must outlive the adapter.
  explicit CurrentApi(const ApiTransport& transport) : transport_(transport) {}

  Result<ServerInfo> health(std::stop_token stop) override { return transport_.health(stop); }
  Result<ProjectInfo> project(std::stop_token stop) override { return transport_.project(stop); }
  ApiGeneration generation() const override { return ApiGeneration::kCurrent; }
  void set_generation(ApiGeneration) override {}
  /// kPermanent without a request when query.ids holds more than 100 ids. Callers keep the id
  /// list within kMaxIdListBytes (a longer request line gets 414 or 431 from the server).
  Result<ScorePage> scores(const ScoreQuery& query, std::stop_token stop) override;
  /// kPermanent without a request when query.trace_id is empty (that would list the project).
  Result<ObservationPage> observations(const ObservationQuery& query,
                                       std::stop_token stop) override;

 private:
  const ApiTransport& transport_;
};

}  // namespace lfh
