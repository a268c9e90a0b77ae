// Fetches one trace's observations page by page (GET observations?traceId=..., never the whole
// trace), committing each page with the cursor after it. Decides what a failure means for the
// trace: smaller pages for a page over the size cap, a retry time with backoff, or failed.
// Learns sizes: a page (or a response cut off mid-way) larger than big_response_bytes holds
// the trace as big in the database; a big trace is fetched one observation per page.
#pragma once

#include <optional>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "core/random.h"
#include "langfuse/langfuse_api.h"
#include "store/checkpoint_store.h"
#include "sync/server_gate.h"
#include "sync/sync_settings.h"

namespace lfh {

struct TraceFetchResult {
  enum class Outcome {
    kDone,       // all pages stored
    kRetry,      // a retry is scheduled (state retry, next_attempt_at)
    kFailed,     // given up (state failed, with reason)
    kDeferred,   // breaker open: nothing counted, the trace stays due
    kCancelled,  // stop requested; progress so far is committed
    kFatal,      // auth failure or database error: the pass must stop
    kBig,        // a page came back big: it is stored and the trace is now held as big (in the
                 // database); the rest must be fetched with nothing else in flight
  };
  Outcome outcome = Outcome::kDone;
  Status error;
  int64_t requests = 0;
  int64_t pages = 0;
  int64_t observations = 0;
  int64_t record_errors = 0;
  int64_t largest_response = 0;  // body bytes of the largest page (or cut-off response) seen
  bool learned_big = false;      // this fetch found the trace big and recorded it
  // The slowest answer of a small page (under kSmallPageBytes), for the latency signal: big
  // pages are slow because they are big, small ones because the server is busy.
  std::optional<Millis> small_page_latency;
};

inline constexpr int64_t kSmallPageBytes = 256 * 1024;

class TraceFetcher {
 public:
  TraceFetcher(LangfuseApi& api, CheckpointStore& store, ServerGate& gate, Clock& clock,
               Random& random, const SyncSettings& settings)
      : api_(api),
        store_(store),
        gate_(gate),
        clock_(clock),
        random_(random),
        settings_(settings) {}

  /// Thread-safe (several workers share one fetcher).
  TraceFetchResult fetch(const std::string& project, TraceTask task, std::stop_token stop);

 private:
  static int64_t bytes_of_failure(const Status& error);
  Status learn_size(const std::string& project, TraceTask& task, int64_t bytes,
                    TraceFetchResult& result);
  TraceFetchResult handle_error(const std::string& project, const TraceTask& task, int page_size,
                                const Status& error, TraceFetchResult result);

  LangfuseApi& api_;
  CheckpointStore& store_;
  ServerGate& gate_;
  Clock& clock_;
  Random& random_;
  const SyncSettings& settings_;
};

}  // namespace lfh
