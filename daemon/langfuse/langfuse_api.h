// The Langfuse public API as lfharvest uses it, one interface over both API generations.
//
// Implementations map HTTP outcomes to Status kinds: 400 -> kPermanent, 401/403 -> kAuth,
// 404 and 501 -> kNotFound (an endpoint this server does not have), 413 and a 422 about size ->
// kTooLarge, a 422 "Request timed out" (the server's query timeout) -> kRetryable, 429 ->
// kRateLimited (retry_after_ms from Retry-After), other 5xx/524 -> kRetryable (retry_after_ms
// when the server sent Retry-After), a body that is not the expected JSON document ->
// kRetryable. detail() is the HTTP status. Items inside a good page that cannot be read become
// RecordErrors, never a failed page. Never calls GET /api/public/traces/{id}.
//
// Implementations: CurrentApi and LegacyApi (one API generation each, langfuse/*_api.h) and
// LangfuseClient, which detects the generation of each endpoint and falls back between them.
#pragma once

#include <stop_token>

#include "core/status.h"
#include "langfuse/model.h"

namespace lfh {

class LangfuseApi {
 public:
  virtual ~LangfuseApi() = default;
  /// GET /api/public/health (no auth). Fills the generation guessed from the version.
  virtual Result<ServerInfo> health(std::stop_token stop) = 0;
  /// GET /api/public/projects: validates the keys, returns the key's project.
  virtual Result<ProjectInfo> project(std::stop_token stop) = 0;
  /// The generation in use for scores() (kUnknown until known).
  virtual ApiGeneration generation() const = 0;
  /// The generation in use for observations(); a server can have them differ (a v4 server
  /// without v2 observations).
  virtual ApiGeneration observations_generation() const { return generation(); }
  /// Sets the generation of every endpoint (a detecting implementation may still fall back).
  virtual void set_generation(ApiGeneration g) = 0;
  /// One page of scores, newest first.
  virtual Result<ScorePage> scores(const ScoreQuery& query, std::stop_token stop) = 0;
  /// One page of a trace's observations, with input/output.
  virtual Result<ObservationPage> observations(const ObservationQuery& query,
                                               std::stop_token stop) = 0;
};

}  // namespace lfh
