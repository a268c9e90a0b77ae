// Reads one score stream page by page into the store, resuming an interrupted pass at its saved
// cursor. Each page is committed together with the cursor after it, so a kill repeats at most
// the page that was in flight.
#pragma once

#include <functional>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "core/random.h"
#include "core/status.h"
#include "langfuse/langfuse_api.h"
#include "store/checkpoint_store.h"
#include "sync/server_gate.h"
#include "sync/sync_settings.h"

namespace lfh {

struct ScorePassResult {
  enum class Outcome { kComplete, kWaiting, kCancelled, kFatal };
  Outcome outcome = Outcome::kComplete;
  Status error;  // kFatal: why; kWaiting: the last transient error
  int64_t pages = 0;
  int64_t requests = 0;
  int64_t scores_seen = 0;
  int64_t record_errors = 0;
  ScorePageCounts counts;  // summed over the pass
};

class ScorePoller {
 public:
  ScorePoller(LangfuseApi& api, CheckpointStore& store, ServerGate& gate, Clock& clock,
              Random& random, const SyncSettings& settings)
      : api_(api),
        store_(store),
        gate_(gate),
        clock_(clock),
        random_(random),
        settings_(settings) {}

  /// Polls new scores: from (watermark - overlap), or settings.since / all history on the first
  /// pass; resumes an interrupted pass. New traces are queued for fetching.
  ScorePassResult poll_new(const std::string& project, std::stop_token stop);

  /// Re-reads scores with timestamp >= from on `stream` (the edit re-scan): changes are
  /// recorded by the store. Traces are queued too (a re-scan can find scores the poll missed).
  ScorePassResult rescan(const std::string& project, const std::string& from, std::stop_token stop);

  /// One page request with the retry policy: transient errors back off (capped full jitter,
  /// never earlier than Retry-After) up to max_attempts, waits longer than max_wait end the pass.
  /// On failure result.outcome and result.error say why (the error is also returned).
  Result<ScorePage> fetch_page(const ScoreQuery& query, std::stop_token stop,
                               ScorePassResult& result);

 private:
  ScorePassResult run_stream(const std::string& project, const std::string& stream,
                             const std::optional<std::string>& from, bool resume,
                             std::stop_token stop);

  LangfuseApi& api_;
  CheckpointStore& store_;
  ServerGate& gate_;
  Clock& clock_;
  Random& random_;
  const SyncSettings& settings_;
};

}  // namespace lfh
