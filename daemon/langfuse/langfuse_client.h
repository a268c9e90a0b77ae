// The LangfuseApi lfharvest uses: detects the API generation of each endpoint and falls back
// between the two adapters (CurrentApi, LegacyApi), and narrows observation queries the server
// times out on.
//
// Generation, per endpoint (scores and observations separately: a v4 server in legacy write mode
// has v3 scores but no v2 observations; 3.133..3.158 answer 501 on v2 observations):
// - options.generation kUnknown detects. health() adopts the generation of the server version
//   for every endpoint not known yet; an endpoint still unknown uses the current API and
//   remembers the generation that answered. A 404 or 501 (kNotFound) from one generation's
//   endpoint switches that endpoint to the other generation and retries once (a cursor is
//   specific to its generation, so the retry starts the listing from its first page).
// - kLegacy pins both endpoints: a kNotFound is returned as it is.
// - kCurrent pins scores to v3. Observations use v2 and fall back to the legacy endpoint on
//   kNotFound, because v4 servers without the v4 preview have no v2 observations.
// set_generation() sets both endpoints (the detection rules above still apply).
//
// Query timeouts: a 422 "Request timed out" (kRetryable, detail 422) on an observation query
// without start-time bounds and with an anchor_time is retried at once bounded to
// [anchor - kAnchorBefore, anchor + kAnchorAfter); from then on every observation query with an
// anchor is bounded that way (the server has shown it cannot answer unbounded ones). An
// observation that starts outside that window is not fetched once bounding is on.
//
// Thread-safe: the generations and the bounding switch are atomic; the rest is immutable.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "core/clock.h"
#include "http/http_client.h"
#include "langfuse/api_transport.h"
#include "langfuse/current_api.h"
#include "langfuse/langfuse_api.h"
#include "langfuse/legacy_api.h"

namespace lfh {

/// Observation windows around a trace's anchor once the server times out on unbounded queries:
/// a trace is annotated after it ran, usually within days.
inline constexpr std::chrono::hours kAnchorBefore{24 * 30};
inline constexpr std::chrono::hours kAnchorAfter{24};

class LangfuseClient final : public LangfuseApi {
 public:
  /// Production: both adapters over one transport. `http` and `clock` must outlive the client.
  LangfuseClient(HttpClient& http, const Clock& clock, LangfuseClientOptions options);
  /// Decorates two adapters (tests); they must outlive the client. `pinned` as
  /// options.generation above.
  LangfuseClient(LangfuseApi& current, LangfuseApi& legacy, ApiGeneration pinned);

  Result<ServerInfo> health(std::stop_token stop) override;
  Result<ProjectInfo> project(std::stop_token stop) override;
  ApiGeneration generation() const override { return scores_generation_.load(); }
  ApiGeneration observations_generation() const override { return observations_generation_.load(); }
  void set_generation(ApiGeneration g) override;
  Result<ScorePage> scores(const ScoreQuery& query, std::stop_token stop) override;
  Result<ObservationPage> observations(const ObservationQuery& query,
                                       std::stop_token stop) override;

  /// Whether observation queries with an anchor are bounded now (see above).
  bool bounding_observation_queries() const { return bound_observations_.load(); }

 private:
  enum class Fallback { kNever, kOnNotFound };
  template <typename Page, typename Call>
  Result<Page> with_fallback(std::atomic<ApiGeneration>& generation, Fallback fallback,
                             const char* endpoint, Call call);
  LangfuseApi& adapter(ApiGeneration g) { return g == ApiGeneration::kLegacy ? legacy_ : current_; }

  std::unique_ptr<ApiTransport> transport_;  // null when decorating given adapters
  std::unique_ptr<CurrentApi> owned_current_;
  std::unique_ptr<LegacyApi> owned_legacy_;
  LangfuseApi& current_;
  LangfuseApi& legacy_;
  const ApiGeneration pinned_;
  std::atomic<ApiGeneration> scores_generation_;
  std::atomic<ApiGeneration> observations_generation_;
  std::atomic<bool> bound_observations_{false};
};

}  // namespace lfh
